#include "runtime/sequence.h"

#include "ops/parallel.h"
#include "ops/softmax.h"
#include "util/error.h"

namespace mlar {

void Sequence::check_nll_args(std::span<const int32_t> tokens, std::span<const int32_t> targets,
                              std::span<double> nll) const {
  if (targets.size() != tokens.size() || nll.size() != tokens.size())
    fail("forward_nll: {} tokens but {} targets and {} outputs", tokens.size(), targets.size(), nll.size());
  const int64_t V = config().vocab_size;
  for (int32_t t : targets)
    if (t < 0 || t >= V) fail("forward_nll: target id {} outside the vocabulary of {}", t, V);
}

void Sequence::forward_nll(std::span<const int32_t> tokens, std::span<const int32_t> targets, std::span<double> nll) {
  check_nll_args(tokens, targets, nll);
  const Tensor& logits = forward(tokens, Logits::All);  // [n, V]
  const int64_t n = static_cast<int64_t>(tokens.size()), V = logits.shape[1];
  ops::parallel_for(n, ops::pick_grain(n, 4 * V), [&](int64_t r0, int64_t r1) {
    for (int64_t i = r0; i < r1; ++i)
      nll[static_cast<size_t>(i)] =
          ops::log_sum_exp(logits.row(i), V) - static_cast<double>(logits.row(i)[targets[static_cast<size_t>(i)]]);
  });
}

}  // namespace mlar
