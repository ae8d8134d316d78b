// Removing the query bias b_q of an `extend` layer (Qwen2 sources; the intercept of a
// fitted q_lora), which neither DeepSeek-V3 nor GGUF deepseek2 can hold (MLA.md §5).
// It cannot be exact: the score term b_q . k_n varies with the key, and no bias-free
// linear map of x is constant. Every construction here replaces the constant 1 that
// multiplies b_q by a linear function u^T x of the attention input, i.e.
//   W_q' = W_q + b_q u^T,   q' = W_q x + b_q (u^T x),   error  b_q (u^T x - 1),
// so the error of every head and every coordinate (NoPE and rope alike) is the same
// scalar e(x) = u^T x - 1 times the bias, and the residual fraction
//   rho(u) = E[e(x)^2] = 1 - 2 u^T m + u^T S_xx u      (m = E[x], S_xx = E[x x^T])
// is what a construction leaves of the bias term (1 for dropping it):
//   drop  u = 0 (the baseline; what stock transformers does with a stray b_q).
//   mean  u = m / |m|^2: E[u^T x] = 1 exactly (the mean direction as a constant
//         feature); unbiased, but its variance is left.
//   fold  u = (S_xx + lambda I)^-1 m: the least-squares fit, min_u E[(u^T x - 1)^2]
//         (+ ridge), rho = 1 - m^T S_xx^-1 m. The post-RMSNorm hidden states have a
//         strong mean direction, which is what makes this small.
// Weighting the fit by what consumes q (E over keys of (e(x) b . k)^2, or the key
// covariance) multiplies every head's objective by a constant when queries and keys
// are independent, so it leads to the same u: the fold is already the score-space
// optimum among bias-free linear maps of x (ridge aside).
// With q_lora, the fold is instead the least-squares fit of the biased query on
// RMSNorm(q_a x) without an intercept (factor_query, norm_fit.h).
#pragma once
#include <optional>
#include <string>
#include <vector>

#include "convert/linalg.h"
#include "model/mla.h"

namespace mlar {

// auto: fold when the conversion is otherwise exportable (--latent-norm calibrated),
// else keep. keep: the bias stays (this project's MLA format holds it).
enum class QueryBias { Auto, Keep, Fold, Mean, Drop };
const char* query_bias_name(QueryBias q);
std::optional<QueryBias> query_bias_from_name(const std::string& s);

// u for `mode` (Fold, Mean or Drop) from S = E[[x;1][x;1]^T] ([D+1, D+1]); ridge is
// relative to tr(S_xx) / D. Returns D values.
std::vector<double> bias_fold_direction(const la::Mat& S, QueryBias mode, double ridge = 1e-6);

// rho(u) = E[(u^T x - 1)^2] under S.
double bias_residual(const la::Mat& S, const std::vector<double>& u);

// W_q += b_q u^T, b_q removed (w.wq a full-rank query; no-op without b_q).
void fold_query_bias(MlaLayerWeights& w, const std::vector<double>& u);

// The same for the latent and rope-key biases (b_dkv, b_kr: a Qwen2 source's b_k, b_v
// after the conversion), which GGUF deepseek2 and vLLM / SGLang's DeepSeek layers do not
// load: W += b u^T, b removed. The error is the same scalar u^T x - 1 times each bias,
// so rho(u) measures it too. Returns true when a bias was folded.
bool fold_kv_biases(MlaLayerWeights& w, const std::vector<double>& u);

// True when t holds a non-zero value.
bool any_nonzero(const TypedTensor& t);

}  // namespace mlar
