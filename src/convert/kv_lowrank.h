// Joint low rank of z = [k_nope ; v] (MLA.md §4 step 2): z = W_z [x;1] has
// Z = 2 * n_kv * d values (the NoPE keys of every kv group, then their values); the
// latent c = A z (r values, cached) and z ~ B c. Every method is a (weighted) PCA
// written as: pick a metric M = L L^T on z, take the leading eigenvectors P of
// L^T E[z z^T] L, then A = P^T L^T, B = L^-T P (so B A z is the M-orthogonal
// projection of z onto the kept subspace, the optimum of E[(z - B A z)^T M (z - B A z)]):
//   pca      M = I: plain PCA of E[z z^T] (uncentered, bias included).
//   bkv-pca  M = diag(a^2 I_k, I_v), a^2 = E|v|^2 / E|k_nope|^2 (TransMLA's balanced
//            K and V: both halves get equal energy before the PCA).
//   svd      no activations (MHA2MLA): the left singular vectors of [W_z | b_z].
//   attn     M = blockdiag(M_K, M_V), what the errors cost downstream (first order):
//              value error e of group j reaches the output as W_o[h] e for each
//              head h of the group: M_V,j = sum_h W_o[h]^T W_o[h]  (block Gram of W_o);
//              key error e moves head h's score by q_h.e/sqrt(d), which moves its
//              output by ~ W_o[h] (v - v_mean) per unit of score:
//              M_K,j = sum_h tr(W_o[h]^T W_o[h] Cov(v_j)) / d * E[q_h q_h^T].
//            Both are then in units of squared output error (the attention-averaging
//            factor sum_n p_n^2 is common to the two and drops out).
#pragma once
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "convert/linalg.h"

namespace mlar {

enum class KvMethod { Pca, BkvPca, Svd, Attn };
const char* kv_method_name(KvMethod m);  // pca bkv-pca svd attn
std::optional<KvMethod> kv_method_from_name(const std::string& name);
std::string kv_method_names();

// What the methods read for one layer.
struct KvProblem {
  la::Mat wz;            // [Z, D+1] augmented map of z = [k_nope (n_kv d) ; v (n_kv d)]
  la::Mat S;             // [D+1, D+1] E[[x;1][x;1]^T]
  int64_t key_rows = 0;  // n_kv * d: rows of wz that are keys
  // attn only:
  la::Mat key_metric;    // [n_kv d, n_kv d] M_K (block diagonal over groups)
  la::Mat value_metric;  // [n_kv d, n_kv d] M_V (block diagonal over groups)
};

// A full ordered basis: truncating to r keeps the r best components.
struct KvBasis {
  la::Mat down;                // [Z, Z] row k: latent coordinate k as a functional of z
  la::Mat up;                  // [Z, Z] column k: what coordinate k adds back to z
  std::vector<double> energy;  // [Z] objective captured by each component, descending
};

KvBasis kv_basis(KvMethod method, const KvProblem& p);

// The first r rows of down (A, [r, Z]) and columns of up (B, [Z, r]).
la::Mat kv_down(const KvBasis& b, int64_t r);
la::Mat kv_up(const KvBasis& b, int64_t r);

}  // namespace mlar
