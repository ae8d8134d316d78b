// RoPE separation of the `extend` retrofit (MLA.md §4 step 1): which part of the
// source keys becomes the one shared rope key of d_r values (n_r = 1), and how.
//
// Source pair i of a head of size d (frequency w_i) holds, for kv head j, the 2-D
// vector k_{j,i} = (re, im). A RopeGroup takes F source frequencies (F = 1 except for
// RoRoPE with FreqFold) and the n_kv * F vectors k_{j,f} of its frequencies; from
// the calibration second moment C[(j,f), (j',f')] = E[k_{j,f} . k_{j',f'}] (re and im
// as separate samples) it keeps m leading components:
//   rope pair a      k'_a = sum_{j,f} mix[(j,f), a] k_{j,f}           (re and im alike)
//   rope part        k_{j,f} ~ sum_a part[(j,f), a] k'_a, the rest of k_{j,f} is NoPE
//   rope query of h  q'_{h,a} = sum_f part[(j(h),f), a] q_{h,f}       (a scalar mix per
//                    pair: it commutes with RoPE when the F frequencies are one)
// With PCA (orthonormal eigenvectors) mix = part. Component a is roped at the
// frequency of source pair rope_freq[a]. Exact (for the rope part) when F = 1; with
// F > 1 each component carries F frequencies and is roped at one (TransMLA FreqFold).
//
// Complex PCA (this project; --rope-pca complex): a pair is a complex number
// z = re + i im and RoPE multiplies it by e^{i w t}, so any *complex* scalar mix of
// same-frequency pairs commutes with RoPE, not only a real one. With complex
// coefficients (conj = complex conjugate):
//   k'_a = sum conj(mix) k,   rope part = part k'_a,   q'_{h,a} = sum_f conj(part) q_{h,f}
// and score = Re(conj(q') e^{i w t} k') reproduces q . R (part k'). The eigenvectors of
// the Hermitian covariance E[z z^H] align the heads' phases as well as their scales:
// on stories260K the first component holds 90-98% of a frequency's key energy, the
// real PCA 55-85%.
//
// Strategies (d_r/2 rope pairs in all):
//   rorope   TransMLA: groups of F adjacent frequencies (F = freqfold, a multiple of
//            c = d/d_r dividing d/2); each keeps its F/c leading components, roped at
//            the group's frequencies gF, gF + c, ...; with F = c = 1 every frequency
//            keeps its first principal head (RoRoPE proper).
//   high / low / uniform / 2norm   MHA2MLA partial RoPE: d_r/2 single frequencies
//            (the highest, the lowest, every (d/2)/(d_r/2)-th, or the largest
//            sum_h sqrt(E|q_{h,i}|^2 E|k_{j(h),i}|^2)), each keeping its first principal
//            head (PCA across the n_kv heads; for n_kv = 1 the key pair itself).
// Frequencies not kept are NoPE for every head.
#pragma once
#include <cstdint>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "convert/linalg.h"
#include "model/config.h"

namespace mlar {

enum class RopeStrategy { RoRoPE, High, Low, Uniform, TwoNorm };
const char* rope_strategy_name(RopeStrategy s);  // rorope high low uniform 2norm
std::optional<RopeStrategy> rope_strategy_from_name(const std::string& name);
std::string rope_strategy_names();  // "rorope, high, low, uniform, 2norm"

// Coordinates (first, second) of pair i in a head of size dim under `layout`.
std::pair<int64_t, int64_t> rope_pair_coords(RopeLayout layout, int64_t dim, int64_t i);

struct RopeGroup {
  std::vector<int64_t> freqs;      // [F] source pair indices
  la::Mat mix, mix_im;             // [n_kv * F, m], row j * F + f: real and imaginary parts
  la::Mat part, part_im;           // [n_kv * F, m] (imaginary parts zero for the real PCA)
                                   // (the same here; kept apart for non-orthogonal mixes)
  std::vector<int64_t> rope_freq;  // [m] source pair index each component is roped at
  std::vector<double> eigenvalues; // [n_kv * F] descending (C's spectrum)
  double rope_energy = 0;          // E|rope part|^2 summed over the group's pairs
};

struct RopePlan {
  int64_t d_r = 0;
  int64_t freqfold = 1;
  std::vector<RopeGroup> groups;
  // Rope key pair t (0 .. d_r/2 - 1), in increasing source frequency index (so that
  // every c-th frequency gives the derived table of a head of size d_r):
  std::vector<std::pair<int64_t, int64_t>> slots;  // [d_r/2] (group, component)
  std::vector<int64_t> slot_freq;                  // [d_r/2] source pair index roped at
  double captured = 0;  // fraction of E|k|^2 the rope key holds (over all kv heads)
};

// Second moments the plan reads.
struct RopeStats {
  la::Mat key;                 // [n_kv * d, n_kv * d]  E[k k^T]
  std::vector<la::Mat> query;  // n_h x [d, d]          E[q_h q_h^T] (2norm only)
};

// Throws mlar::Error naming the problem when (strategy, d_r, freqfold) is impossible
// for head size d: d_r odd, <= 0 or > d; rorope with d/d_r not an integer, or
// freqfold not a multiple of d/d_r dividing d/2; freqfold > 1 with another strategy.
void check_rope_choice(const ModelConfig& c, RopeStrategy s, int64_t d_r, int64_t freqfold);

// The freqfold values rorope accepts for d_r: c, 2c, 4c, ... dividing d/2 (c = d/d_r);
// {1} for the other strategies.
std::vector<int64_t> freqfold_candidates(const ModelConfig& c, RopeStrategy s, int64_t d_r);

// kept_freqs (partial strategies): the source pair index of every rope pair; empty =
// choose from this layer's stats alone.
// complex: PCA of the Hermitian covariance (see above), else of its real part.
RopePlan plan_rope(const ModelConfig& c, const RopeStats& stats, RopeStrategy s, int64_t d_r, int64_t freqfold,
                   const std::vector<int64_t>& kept_freqs = {}, bool complex = false);

// The source pair index of each of the d_r/2 rope pairs (ascending) a partial
// strategy keeps, for the whole model: 2norm sums each layer's scores normalised to
// sum 1 (layers count equally). Empty for rorope.
std::vector<int64_t> choose_partial_freqs(const ModelConfig& c, RopeStrategy s, int64_t d_r,
                                          const std::vector<const RopeStats*>& layers);

// The inverse frequencies of the plan's rope pairs (from the source table), or empty
// when they are exactly those a head of size d_r derives from the source's theta and
// scaling (MlaConfig::rope_inv_freq semantics).
std::vector<double> plan_inv_freq(const ModelConfig& c, const RopePlan& plan);
// The same from the source pair index of each rope pair.
std::vector<double> rope_inv_freq_table(const ModelConfig& c, int64_t d_r, const std::vector<int64_t>& slot_freq);

}  // namespace mlar
