"""Loading the teacher (GQA source, HF directory) and the student (our DeepSeek-V3 export)
with transformers, the checks that make training them meaningful, and the pieces of their
modules the objectives call."""
import json
import math
import os

# A latent in the linear regime of kv_a_layernorm (convert --latent-scale linear) has an RMS far
# below sqrt(eps) = 1e-3 (its rows are ~1e-4 of their natural size); natural latents are O(0.1..10).
LINEAR_LATENT_RMS = 1e-2


class InputError(Exception):
    """Bad input: one line naming the file and the problem."""


def read_config(path):
    f = os.path.join(path, "config.json")
    try:
        with open(f, encoding="utf-8") as fh:
            return json.load(fh)
    except FileNotFoundError:
        raise InputError(f"{f}: not found (expected an HF model directory)") from None
    except json.JSONDecodeError as e:
        raise InputError(f"{f}: not JSON ({e})") from None


# GQA sources a student may also be (the control arm: the source fine-tuned with the same recipe);
# the families our CLI converts, whose attention tensors all live under .self_attn.
GQA_MODEL_TYPES = ("llama", "mistral", "qwen2", "qwen3")


def is_gqa_student(cfg):
    return cfg.get("model_type") in GQA_MODEL_TYPES


def check_student_config(path, cfg):
    if is_gqa_student(cfg):
        return
    if cfg.get("model_type") != "deepseek_v3":
        raise InputError(f"{path}: model_type is {cfg.get('model_type')!r}, expected 'deepseek_v3' "
                         "(the student is `mla-retrofit export --format deepseek-v3` output) or a GQA source ("
                         + ", ".join(GQA_MODEL_TYPES) + ")")
    n = cfg.get("num_hidden_layers")
    if (cfg.get("n_routed_experts") or 0) > 0 and (cfg.get("first_k_dense_replace") or 0) < n:
        raise InputError(f"{path}: has mixture-of-experts layers; mlar_train trains the dense exports "
                         "mla-retrofit writes (first_k_dense_replace = num_hidden_layers)")
    if (cfg.get("mla_retrofit") or {}).get("latent_linear") or (cfg.get("mla") or {}).get("latent_linear"):
        raise InputError(linear_latent_message(path))


def linear_latent_message(path):
    return (f"{path}: the latent runs in the linear regime of kv_a_layernorm (convert --latent-scale linear, the "
            "default of extend without --distill-steps): the latent rows of kv_a_proj_with_mqa are scaled down by "
            "about 1e-4, which AdamW's steps of fixed size would swamp (docs/finetune.md); convert again with "
            "--latent-scale natural and export that")


def _from_pretrained(cls, path, torch_dtype):
    """from_pretrained across transformers 4.x (torch_dtype=) and 5.x (dtype=); returns the
    model and the loading info (missing / unexpected keys)."""
    kw = dict(attn_implementation="sdpa", output_loading_info=True)
    try:
        m, info = cls.from_pretrained(path, dtype=torch_dtype, **kw)
    except TypeError:
        m, info = cls.from_pretrained(path, torch_dtype=torch_dtype, **kw)
    return m.to(torch_dtype), info


def load_student(path, device):
    """The DeepSeek-V3 export (DeepseekV3ForCausalLM), or a GQA source (AutoModelForCausalLM: the
    control, trained by the same loop), in float32."""
    import torch
    import transformers
    cfg = read_config(path)
    check_student_config(path, cfg)
    gqa = is_gqa_student(cfg)
    cls = transformers.AutoModelForCausalLM if gqa else getattr(transformers, "DeepseekV3ForCausalLM", None)
    if cls is None:
        raise InputError(f"transformers {transformers.__version__} has no DeepseekV3ForCausalLM (needs >= 4.54)")
    m, info = _from_pretrained(cls, path, torch.float32)
    bad = {k: v for k, v in info.items() if k in ("missing_keys", "unexpected_keys", "mismatched_keys") and v}
    if cfg.get("tie_word_embeddings") and "missing_keys" in bad:
        bad["missing_keys"] = [k for k in bad["missing_keys"] if k != "lm_head.weight"]
        if not bad["missing_keys"]:
            del bad["missing_keys"]
    if bad:
        raise InputError(f"{path}: DeepseekV3ForCausalLM did not load it cleanly: {bad}")
    m.config.use_cache = False
    m = m.to(device)
    if not gqa:  # a GQA student has no latent
        check_latent_regime(path, m, cfg["vocab_size"])
    return m, cfg


def check_latent_regime(path, model, vocab):
    """Refuses a student whose latent runs in the linear regime of its norm (also when the config
    does not record it): the RMS of every layer's latent on a few tokens."""
    import torch
    rms, hooks = {}, []
    r = model.config.kv_lora_rank
    for i, layer in enumerate(model.model.layers):
        def hook(_m, _a, out, i=i):
            rms[i] = out[..., :r].float().pow(2).mean().sqrt().item()
        hooks.append(layer.self_attn.kv_a_proj_with_mqa.register_forward_hook(hook))
    try:
        dev = next(model.parameters()).device
        with torch.no_grad():
            model.model(input_ids=(torch.arange(1, 65, device=dev) % vocab).unsqueeze(0), use_cache=False)
    finally:
        for h in hooks:
            h.remove()
    low = {i: v for i, v in rms.items() if v < LINEAR_LATENT_RMS}
    if low:
        i, v = min(low.items(), key=lambda kv: kv[1])
        raise InputError(linear_latent_message(path) + f" (layer {i}: latent RMS {v:.3g} on 64 tokens)")


def load_teacher(path, device, torch_dtype):
    import transformers
    cfg = read_config(path)
    m, info = _from_pretrained(transformers.AutoModelForCausalLM, path, torch_dtype)
    m.config.use_cache = False
    m.eval()
    for p in m.parameters():
        p.requires_grad_(False)
    return m.to(device), cfg


def residual_scale(student, teacher, log=print):
    """alpha: the student's residual stream is the teacher's times alpha. Export writes every
    norm at eps 1e-6 and rescales the stream by sqrt(1e-6 / eps) (docs/mla-format.md, MLA.md
    §5), so alpha = sqrt(eps_student / eps_teacher); the embeddings' norms confirm it."""
    a = math.sqrt(student.config.rms_norm_eps / teacher.config.rms_norm_eps)
    es, et = student.get_input_embeddings().weight, teacher.get_input_embeddings().weight
    if es.shape == et.shape:
        r = (es.detach().double().norm() / et.detach().double().norm().clamp_min(1e-30)).item()
        if abs(r / a - 1) > 1e-3:
            log(f"warning: embedding norm ratio student/teacher {r:.6g} differs from sqrt(eps ratio) {a:.6g}; "
                "is the student an export of a conversion of this teacher?")
    return a


def trainable_names(model, mode, scope):
    """The C++ trainer's choice (src/train/params.cpp): --train attn = every attention
    tensor (self_attn.*: q / q_a / q_a_layernorm / q_b, kv_a_proj_with_mqa, kv_a_layernorm,
    kv_b_proj, o_proj); --train all = every tensor (layerwise: attention and input_layernorm)."""
    names = []
    for n, _ in model.named_parameters():
        attn = ".self_attn." in n
        if scope == "attn":
            ok = attn
        elif mode == "layerwise":
            ok = attn or ".input_layernorm." in n
        else:
            ok = True
        if ok:
            names.append(n)
    return names


class TeacherCapture:
    """Forward hooks on the teacher's decoder layers: each layer's input residual h_l and its
    attention block's output (before the residual add), for the layerwise objective."""

    def __init__(self, model):
        self.h_in, self.attn_out, self.handles = {}, {}, []
        for i, layer in enumerate(decoder_layers(model)):
            self.handles.append(layer.register_forward_pre_hook(self._pre(i), with_kwargs=True))
            self.handles.append(layer.self_attn.register_forward_hook(self._post(i)))

    def _pre(self, i):
        def hook(_mod, args, kwargs):
            self.h_in[i] = args[0] if args else kwargs["hidden_states"]
        return hook

    def _post(self, i):
        def hook(_mod, _args, out):
            self.attn_out[i] = out[0] if isinstance(out, (tuple, list)) else out
        return hook

    def clear(self):
        self.h_in, self.attn_out = {}, {}

    def remove(self):
        for h in self.handles:
            h.remove()


def decoder_layers(model):
    return model.model.layers


def rotary(model, x, position_ids):
    """(cos, sin) of the model's own rotary embedding for these positions."""
    return model.model.rotary_emb(x, position_ids)


def attention_block(layer, x, position_embeddings):
    """One decoder layer's attention on already-normalised x, causal (sdpa with no mask)."""
    out = layer.self_attn(hidden_states=x, position_embeddings=position_embeddings, attention_mask=None)
    return out[0] if isinstance(out, (tuple, list)) else out
