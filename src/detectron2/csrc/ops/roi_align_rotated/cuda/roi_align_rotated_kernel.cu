// CUDA kernels of ROIAlignRotated: one thread per output element (forward) or per
// output gradient element (backward, scattering with atomicAdd). The sampling math is
// the CPU kernel's, from roi_align_rotated_utils.h.
#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include "ops/roi_align_rotated/cuda/roi_align_rotated_kernel.h"
#include "ops/roi_align_rotated/roi_align_rotated_utils.h"

namespace detectron2 {
namespace roi_align_rotated {

namespace {

constexpr int kThreads = 256;

// Explicit conversions: torch builds with __CUDA_NO_HALF_CONVERSIONS__.
template <typename T>
struct Acc {
  using type = T;
  __device__ static T load(T v) { return v; }
  __device__ static T store(T v) { return v; }
};
template <>
struct Acc<__half> {
  using type = float;
  __device__ static float load(__half v) { return __half2float(v); }
  __device__ static __half store(float v) { return __float2half(v); }
};
template <>
struct Acc<__nv_bfloat16> {
  using type = float;
  __device__ static float load(__nv_bfloat16 v) { return __bfloat162float(v); }
  __device__ static __nv_bfloat16 store(float v) { return __float2bfloat16(v); }
};

// Loads roi n and reports whether it is valid. The kernels check every roi themselves,
// so that no input can make them read out of bounds: the host raises on the status
// that launch_roi_status computed, but only after these kernels are queued.
template <typename T>
__device__ bool load_roi(
    const T* roi, int64_t batch_size, typename Acc<T>::type spatial_scale, int64_t pooled_height,
    int64_t pooled_width, int64_t sampling_ratio, RotatedRoi<typename Acc<T>::type>* g) {
  using A = typename Acc<T>::type;
  A r[6];
  for (int i = 0; i < 6; ++i) r[i] = Acc<T>::load(roi[i]);
  if (roi_status(r, batch_size) != kRoiOk) return false;
  *g = make_roi(r, spatial_scale, pooled_height, pooled_width, sampling_ratio);
  return true;
}

int blocks_for(int64_t n) {
  const int64_t blocks = (n + kThreads - 1) / kThreads;
  return static_cast<int>(blocks < 65535 * 8 ? blocks : 65535 * 8);  // grid-stride covers the rest
}

// 32-bit indexing when every index and offset fits: 64-bit division costs tens of
// instructions and each thread decomposes its index with three of them.
bool fits_int32(int64_t total, int64_t plane_elements) {
  const int64_t limit = (int64_t(1) << 31) - 1 - int64_t(65535) * 8 * kThreads;  // room for the grid stride
  return total < limit && plane_elements < limit;
}

template <typename T>
__global__ void roi_status_kernel(const T* rois, int64_t num_rois, int64_t batch_size, int* status) {
  using A = typename Acc<T>::type;
  __shared__ int block_status;
  if (threadIdx.x == 0) block_status = kRoiOk;
  __syncthreads();
  int local = kRoiOk;
  for (int64_t n = threadIdx.x; n < num_rois; n += blockDim.x) {
    A r[6];
    for (int i = 0; i < 6; ++i) r[i] = Acc<T>::load(rois[n * 6 + i]);
    local |= roi_status(r, batch_size);
  }
  if (local != kRoiOk) atomicOr(&block_status, local);
  __syncthreads();
  if (threadIdx.x == 0) *status = block_status;
}

// I: index type (int or int64_t). One thread per output element, pw fastest.
template <typename T, typename I>
__global__ void forward_kernel(
    I total, const T* __restrict__ input, const T* __restrict__ rois, int64_t batch_size, I channels, I height,
    I width, I pooled_height, I pooled_width, int64_t sampling_ratio, typename Acc<T>::type spatial_scale,
    T* __restrict__ output) {
  using A = typename Acc<T>::type;
  for (I i = blockIdx.x * I(blockDim.x) + threadIdx.x; i < total; i += I(blockDim.x) * gridDim.x) {
    const I pw = i % pooled_width;
    const I ph = (i / pooled_width) % pooled_height;
    const I c = (i / (pooled_width * pooled_height)) % channels;
    const I n = i / (pooled_width * pooled_height * channels);
    RotatedRoi<A> g;
    if (!load_roi(rois + n * 6, batch_size, spatial_scale, pooled_height, pooled_width, sampling_ratio, &g)) {
      output[i] = Acc<T>::store(static_cast<A>(NAN));  // the host raises for this call
      continue;
    }
    const T* plane = input + (static_cast<I>(g.batch) * channels + c) * height * width;
    const I grid_h = static_cast<I>(g.grid_h), grid_w = static_cast<I>(g.grid_w);
    A sum = 0;
    for (I iy = 0; iy < grid_h; ++iy) {
      for (I ix = 0; ix < grid_w; ++ix) {
        A y, x;
        sample_point(g, ph, pw, iy, ix, &y, &x);
        BilinearTap<A, I> t;
        if (!bilinear_tap(height, width, y, x, &t)) continue;
        sum += t.w1 * Acc<T>::load(plane[t.o1]) + t.w2 * Acc<T>::load(plane[t.o2]) +
            t.w3 * Acc<T>::load(plane[t.o3]) + t.w4 * Acc<T>::load(plane[t.o4]);
      }
    }
    output[i] = Acc<T>::store(sum / g.count);
  }
}

template <typename T, typename A, typename I>
__global__ void backward_kernel(
    I total, const T* __restrict__ grad, const T* __restrict__ rois, int64_t batch_size, I channels, I height,
    I width, I pooled_height, I pooled_width, int64_t sampling_ratio, A spatial_scale, A* __restrict__ grad_input) {
  for (I i = blockIdx.x * I(blockDim.x) + threadIdx.x; i < total; i += I(blockDim.x) * gridDim.x) {
    const I pw = i % pooled_width;
    const I ph = (i / pooled_width) % pooled_height;
    const I c = (i / (pooled_width * pooled_height)) % channels;
    const I n = i / (pooled_width * pooled_height * channels);
    RotatedRoi<A> g;
    if (!load_roi(rois + n * 6, batch_size, spatial_scale, pooled_height, pooled_width, sampling_ratio, &g)) continue;
    A* plane = grad_input + (static_cast<I>(g.batch) * channels + c) * height * width;
    const A value = static_cast<A>(Acc<T>::load(grad[i])) / g.count;
    const I grid_h = static_cast<I>(g.grid_h), grid_w = static_cast<I>(g.grid_w);
    for (I iy = 0; iy < grid_h; ++iy) {
      for (I ix = 0; ix < grid_w; ++ix) {
        A y, x;
        sample_point(g, ph, pw, iy, ix, &y, &x);
        BilinearTap<A, I> t;
        if (!bilinear_tap(height, width, y, x, &t)) continue;
        atomicAdd(plane + t.o1, t.w1 * value);
        atomicAdd(plane + t.o2, t.w2 * value);
        atomicAdd(plane + t.o3, t.w3 * value);
        atomicAdd(plane + t.o4, t.w4 * value);
      }
    }
  }
}

}  // namespace

template <typename T>
cudaError_t launch_roi_status(const T* rois, int64_t num_rois, int64_t batch_size, int* status, cudaStream_t stream) {
  roi_status_kernel<T><<<1, kThreads, 0, stream>>>(rois, num_rois, batch_size, status);
  return cudaGetLastError();
}

template <typename T>
cudaError_t launch_forward(
    const T* input, const T* rois, int64_t num_rois, int64_t batch_size, int64_t channels, int64_t height,
    int64_t width, int64_t pooled_height, int64_t pooled_width, int64_t sampling_ratio, double spatial_scale,
    T* output, cudaStream_t stream) {
  using A = typename Acc<T>::type;
  const int64_t total = num_rois * channels * pooled_height * pooled_width;
  if (total == 0) return cudaSuccess;
  const A scale = static_cast<A>(spatial_scale);
  if (fits_int32(total, batch_size * channels * height * width)) {
    forward_kernel<T, int><<<blocks_for(total), kThreads, 0, stream>>>(
        static_cast<int>(total), input, rois, batch_size, static_cast<int>(channels), static_cast<int>(height),
        static_cast<int>(width), static_cast<int>(pooled_height), static_cast<int>(pooled_width), sampling_ratio,
        scale, output);
  } else {
    forward_kernel<T, int64_t><<<blocks_for(total), kThreads, 0, stream>>>(
        total, input, rois, batch_size, channels, height, width, pooled_height, pooled_width, sampling_ratio, scale,
        output);
  }
  return cudaGetLastError();
}

template <typename T, typename A>
cudaError_t launch_backward(
    const T* grad, const T* rois, int64_t num_rois, int64_t batch_size, int64_t channels, int64_t height,
    int64_t width, int64_t pooled_height, int64_t pooled_width, int64_t sampling_ratio, double spatial_scale,
    A* grad_input, cudaStream_t stream) {
  const int64_t total = num_rois * channels * pooled_height * pooled_width;
  if (total == 0) return cudaSuccess;
  const A scale = static_cast<A>(spatial_scale);
  if (fits_int32(total, batch_size * channels * height * width)) {
    backward_kernel<T, A, int><<<blocks_for(total), kThreads, 0, stream>>>(
        static_cast<int>(total), grad, rois, batch_size, static_cast<int>(channels), static_cast<int>(height),
        static_cast<int>(width), static_cast<int>(pooled_height), static_cast<int>(pooled_width), sampling_ratio,
        scale, grad_input);
  } else {
    backward_kernel<T, A, int64_t><<<blocks_for(total), kThreads, 0, stream>>>(
        total, grad, rois, batch_size, channels, height, width, pooled_height, pooled_width, sampling_ratio, scale,
        grad_input);
  }
  return cudaGetLastError();
}

#define D2_INSTANTIATE(T, A)                                                                                   \
  template cudaError_t launch_roi_status<T>(const T*, int64_t, int64_t, int*, cudaStream_t);                   \
  template cudaError_t launch_forward<T>(                                                                      \
      const T*, const T*, int64_t, int64_t, int64_t, int64_t, int64_t, int64_t, int64_t, int64_t, double, T*,  \
      cudaStream_t);                                                                                           \
  template cudaError_t launch_backward<T, A>(                                                                  \
      const T*, const T*, int64_t, int64_t, int64_t, int64_t, int64_t, int64_t, int64_t, int64_t, double, A*,  \
      cudaStream_t);

D2_INSTANTIATE(float, float)
D2_INSTANTIATE(double, double)
D2_INSTANTIATE(__half, float)
D2_INSTANTIATE(__nv_bfloat16, float)
#undef D2_INSTANTIATE

}  // namespace roi_align_rotated
}  // namespace detectron2
