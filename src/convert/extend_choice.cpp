#include "convert/extend_choice.h"

#include <cstdlib>
#include <map>

#include "util/error.h"

namespace mlar {
namespace {

// Minimum of f over [0, n) by the walk of extend_choice.h, from s.
int64_t walk(int64_t n, int64_t s, const std::function<double(int64_t)>& f) {
  int64_t best = s;
  double best_v = f(s);
  // The start's neighbours, then onward in the better one's direction.
  int64_t dir = 0;
  for (int64_t d : {-1, +1}) {
    const int64_t i = s + d;
    if (i < 0 || i >= n) continue;
    const double v = f(i);
    if (v < best_v) best_v = v, best = i, dir = d;
  }
  if (dir == 0) return best;
  for (int64_t i = best + dir; i >= 0 && i < n; i += dir) {
    const double v = f(i);
    if (!(v < best_v)) break;
    best_v = v;
    best = i;
  }
  return best;
}

}  // namespace

const char* choice_mode_name(ChoiceMode m) { return m == ChoiceMode::Fast ? "fast" : "exhaustive"; }

std::optional<ChoiceMode> choice_mode_from_name(const std::string& s) {
  if (s == "fast") return ChoiceMode::Fast;
  if (s == "exhaustive") return ChoiceMode::Exhaustive;
  return std::nullopt;
}

ChoiceResult search_choices(ChoiceMode mode, int64_t n_rope, int64_t n_balance, ChoicePoint start,
                            const std::function<double(ChoicePoint)>& score) {
  if (n_rope < 1 || n_balance < 1) fail("choice search: empty grid of {} x {}", n_rope, n_balance);
  if (start.rope < 0 || start.rope >= n_rope || start.balance < 0 || start.balance >= n_balance)
    fail("choice search: start ({}, {}) outside the grid of {} x {}", start.rope, start.balance, n_rope, n_balance);
  ChoiceResult r;
  std::map<std::pair<int64_t, int64_t>, double> memo;
  auto at = [&](ChoicePoint p) {
    const auto key = std::make_pair(p.rope, p.balance);
    if (auto it = memo.find(key); it != memo.end()) return it->second;
    const double v = score(p);
    memo[key] = v;
    r.scored.push_back({p, v});
    return v;
  };
  // Ties keep the earlier position (strict improvement), in both modes.
  auto argmin_all = [&](int64_t n, const std::function<double(int64_t)>& f) {
    int64_t best = 0;
    double best_v = f(0);
    for (int64_t i = 1; i < n; ++i) {
      const double v = f(i);
      if (v < best_v) best_v = v, best = i;
    }
    return best;
  };
  const int64_t b0 = start.balance;
  auto along_rope = [&](int64_t i) { return at({i, b0}); };
  const int64_t rope = mode == ChoiceMode::Exhaustive ? argmin_all(n_rope, along_rope)
                                                      : walk(n_rope, start.rope, along_rope);
  auto along_balance = [&](int64_t j) { return at({rope, j}); };
  int64_t balance = b0;
  if (n_balance > 1) {
    if (mode == ChoiceMode::Exhaustive) {
      // As before this module: the start first, then the others in order, strict improvement.
      double best_v = along_balance(b0);
      for (int64_t j = 0; j < n_balance; ++j) {
        if (j == b0) continue;
        const double v = along_balance(j);
        if (v < best_v) best_v = v, balance = j;
      }
    } else {
      balance = walk(n_balance, b0, along_balance);
    }
  }
  r.best = {rope, balance};
  r.best_score = at(r.best);
  return r;
}

int64_t rope_start_position(const std::vector<int64_t>& dims, int64_t total) {
  if (dims.empty()) fail("choice search: no rope candidates");
  if (total <= 0) return static_cast<int64_t>(dims.size()) / 2;
  int64_t best = 0;
  for (int64_t i = 1; i < static_cast<int64_t>(dims.size()); ++i) {
    const int64_t e = std::llabs(2 * dims[static_cast<size_t>(i)] - total);
    const int64_t eb = std::llabs(2 * dims[static_cast<size_t>(best)] - total);
    if (e <= eb) best = i;  // ties to the larger d_r (the list ascends)
  }
  return best;
}

}  // namespace mlar
