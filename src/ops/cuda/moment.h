// Second moments of rows on the device, the counterpart of a dsyrk over augmented rows
// (convert/calib_stats.h SecondMoment::add): the calibration statistics of a layer's
// inputs without copying them to the host.
#pragma once
#include <cstdint>

namespace mlar::cuda {

// S += sum_{t < n} [x_t; 1] [x_t; 1]^T in double, x: [n, dim] f32 rows `x_stride` floats apart;
// S: [(dim+1), (dim+1)] doubles, row-major, of which the upper triangle (i <= j) is
// accumulated and the rest left as it is. chunk: scratch of at least n * (dim+1) doubles.
void add_moment(const float* x, int64_t x_stride, int64_t n, int64_t dim, double* S, double* chunk);

}  // namespace mlar::cuda
