// Stored absorption of an MLA model (MLA.md §2, `--absorb`): the up-projections are
// folded into the query and output projections so none runs at inference.
//   nope rows of W_q:  W_q'[h]_nope = W_uk[h]^T W_q[h]_nope    [r, in] per head
//   rope rows of W_q:  W_q'[h]_rope = W_qr[h] W_q[h]_rope      [n_r * d_r, in] (when W_qr is present)
//   output:            W_o' = W_o blockdiag_h(W_uv[h])          [D, n_h * r]
// (the same on the query bias; with q_lora the folding applies to q_b). Products are
// accumulated in double and rounded once. Exact up to that rounding.
#pragma once
#include <string>

#include "model/model.h"

namespace mlar {

// Folds the up-projections of every layer and sets config.mla->absorbed. Works for
// any MLA model (repeat or DeepSeek layout, with or without q_lora); an already
// absorbed model is left as it is; a GQA model is refused, and so is one with q/k
// norms (mla.qk_norm: qk_norm_absorb_refusal() says why).
void absorb(Model& m);

// Why a model with per-head q/k norms (Qwen3) cannot be stored absorbed.
std::string qk_norm_absorb_refusal();

}  // namespace mlar
