// The held-out choices of convert_extend (extend.h): which rope candidate (d_r and,
// for rorope, freqfold) and which attn key balance, each point scored by the
// perplexity of a model converted from source statistics on held-out text. A score
// costs a forward pass over the held-out tokens, so how many points are scored is
// most of what the choice costs.
//
// The grid: a rope axis (candidates in increasing d_r; several freqfolds of one d_r
// sit on one axis position, and that position's score is the best of them) and a
// balance axis (kKeyBalances order, decreasing). Both searches fix the balance at
// `start.balance` while choosing the rope position, then move the balance at the
// chosen rope position.
//   exhaustive  every rope position, then every balance (the choice up to this
//               project's table scripts; 4 + 4 scores at 25% on a head of 64);
//   fast        (default) a walk on each axis with early stopping: score the start
//               and its two neighbours, then keep stepping in the better direction
//               while the score improves; stop at the first step that does not. It
//               finds the exhaustive minimum whenever the scores along an axis are
//               unimodal (as every table in docs/compression.md is), with 2 to 3
//               scores per axis when the start is at or next to the minimum. At one
//               rope position, a strategy's freqfolds are scored in ascending order
//               and stop at the first that scores worse than the fold before it
//               (convert_extend; llama3ish at 25%: 9 candidates instead of 14).
// The rope walk starts at the position whose d_r is closest to half the per-layer
// budget (an even split of the cache between rope key and latent; ties to the larger
// d_r): the held-out choice on every model measured so far (docs/compression.md).
#pragma once
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <vector>

namespace mlar {

enum class ChoiceMode { Fast, Exhaustive };
const char* choice_mode_name(ChoiceMode m);  // fast exhaustive
std::optional<ChoiceMode> choice_mode_from_name(const std::string& s);

struct ChoicePoint {
  int64_t rope = 0;     // position on the rope axis
  int64_t balance = 0;  // position on the balance axis
  bool operator==(const ChoicePoint&) const = default;
};

struct ChoiceResult {
  ChoicePoint best;
  double best_score = 0;
  std::vector<std::pair<ChoicePoint, double>> scored;  // in the order scored, each point once
};

// Minimises score over [0, n_rope) x [0, n_balance) as described above; score is
// called at most once per point. Throws on an empty axis or a start outside it.
ChoiceResult search_choices(ChoiceMode mode, int64_t n_rope, int64_t n_balance, ChoicePoint start,
                            const std::function<double(ChoicePoint)>& score);

// The walk's starting rope position: the index of the d_r (ascending list) closest
// to total / 2 (ties to the larger); total 0 (no budget): the middle position.
int64_t rope_start_position(const std::vector<int64_t>& dims, int64_t total);

}  // namespace mlar
