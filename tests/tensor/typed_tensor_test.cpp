// TypedTensor: empty slots (a default tensor and an empty Tensor hold nothing), dtype
// round trips, views materialised on mutable access, f32_or_convert.
#include <gtest/gtest.h>

#include <cstring>
#include <memory>
#include <vector>

#include "tensor/typed_tensor.h"
#include "util/error.h"
#include "util/half.h"

namespace mlar {
namespace {

TEST(TypedTensor, DefaultAndEmptyTensorsHoldNothing) {
  // A default tensor has shape {}; it must not count as one element (parameter counts,
  // loops over numel(), to_f32 of an unused weight slot).
  const TypedTensor d;
  EXPECT_TRUE(d.empty());
  EXPECT_EQ(d.numel(), 0);
  EXPECT_EQ(d.nbytes(), 0u);
  EXPECT_TRUE(d.to_f32().empty());
  EXPECT_EQ(d.to_f32().numel(), 0);

  const TypedTensor e = Tensor{};
  EXPECT_TRUE(e.empty());
  EXPECT_EQ(e.numel(), 0);
  EXPECT_TRUE(e.to_f32().empty());

  const TypedTensor z = Tensor(Shape{0, 4});  // zero rows keep their shape
  EXPECT_TRUE(z.empty());
  EXPECT_EQ(z.numel(), 0);
  EXPECT_EQ(z.to_f32().shape, (Shape{0, 4}));
  EXPECT_TRUE(TypedTensor::from_f32(Tensor{}, DType::BF16).empty());
  EXPECT_EQ(TypedTensor::from_f32(Tensor{}, DType::BF16).nbytes(), 0u);
  EXPECT_TRUE(d.cast(DType::F16).empty());
  EXPECT_TRUE(TypedTensor::from_f32(Tensor(Shape{0, 4}), DType::F16).empty());

  TypedTensor m;
  scale_values(m, 2.0);  // nothing to scale
  EXPECT_TRUE(m.empty());

  const TypedTensor s = Tensor(Shape{}, {2.5f});  // a stored scalar is one element
  EXPECT_FALSE(s.empty());
  EXPECT_EQ(s.numel(), 1);
  EXPECT_EQ(s.to_f32().data, (std::vector<float>{2.5f}));
}

TEST(TypedTensor, Bf16RoundTripAndCast) {
  const Tensor t(Shape{2, 3}, {1.0f, 1.0f / 3, -2.75f, 1e-3f, 65504.0f, -0.0f});
  const TypedTensor b = TypedTensor::from_f32(t, DType::BF16);
  EXPECT_EQ(b.dtype, DType::BF16);
  EXPECT_EQ(b.nbytes(), 12u);
  const Tensor back = b.to_f32();
  ASSERT_EQ(back.shape, t.shape);
  for (int64_t i = 0; i < t.numel(); ++i) EXPECT_EQ(back.data[i], bf16_to_f32(f32_to_bf16(t.data[i]))) << i;
  EXPECT_THROW(b.ptr(), Error);  // float32 access to BF16 storage must ask for it
  EXPECT_EQ(b.cast(DType::F32).to_f32().data, back.data);
  EXPECT_EQ(TypedTensor(t).cast(DType::F16).to_f32().data[1], f16_to_f32(f32_to_f16(1.0f / 3)));
}

TEST(TypedTensor, ViewIsMaterialisedOnMutableAccess) {
  auto owner = std::make_shared<std::vector<float>>(std::vector<float>{1, 2, 3, 4, 5, 6});
  const TypedTensor v = TypedTensor::view(DType::F32, {2, 3}, owner->data(), owner);
  EXPECT_TRUE(v.is_view());
  EXPECT_EQ(v.ptr(), owner->data());  // no copy to read
  EXPECT_EQ(v.row(1)[0], 4.0f);
  TypedTensor w = v;  // a copy of a view is a view
  EXPECT_TRUE(w.is_view());
  w.ptr()[0] = 10.0f;  // mutable access copies first
  EXPECT_FALSE(w.is_view());
  EXPECT_EQ((*owner)[0], 1.0f);
  EXPECT_EQ(w.to_f32().data, (std::vector<float>{10, 2, 3, 4, 5, 6}));

  Tensor scratch;
  EXPECT_EQ(f32_or_convert(v, scratch), owner->data());
  EXPECT_TRUE(scratch.empty());
  const TypedTensor h = TypedTensor::from_f32(v.to_f32(), DType::F16);
  const float* f = f32_or_convert(h, scratch);
  EXPECT_EQ(std::vector<float>(f, f + 6), (std::vector<float>{1, 2, 3, 4, 5, 6}));
}

}  // namespace
}  // namespace mlar
