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

template <typename T>
__device__ RotatedRoi<typename Acc<T>::type> load_roi(
    const T* roi, double spatial_scale, int64_t pooled_height, int64_t pooled_width, int64_t sampling_ratio) {
  using A = typename Acc<T>::type;
  A r[6];
  for (int i = 0; i < 6; ++i) r[i] = Acc<T>::load(roi[i]);
  return make_roi(r, static_cast<A>(spatial_scale), pooled_height, pooled_width, sampling_ratio);
}

int blocks_for(int64_t n) {
  const int64_t blocks = (n + kThreads - 1) / kThreads;
  return static_cast<int>(blocks < 65535 * 8 ? blocks : 65535 * 8);  // grid-stride covers the rest
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

template <typename T>
__global__ void forward_kernel(
    int64_t total, const T* __restrict__ input, const T* __restrict__ rois, int64_t channels, int64_t height,
    int64_t width, int64_t pooled_height, int64_t pooled_width, int64_t sampling_ratio, double spatial_scale,
    T* __restrict__ output) {
  using A = typename Acc<T>::type;
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < total; i += int64_t(blockDim.x) * gridDim.x) {
    const int64_t pw = i % pooled_width;
    const int64_t ph = (i / pooled_width) % pooled_height;
    const int64_t c = (i / (pooled_width * pooled_height)) % channels;
    const int64_t n = i / (pooled_width * pooled_height * channels);
    const RotatedRoi<A> g = load_roi(rois + n * 6, spatial_scale, pooled_height, pooled_width, sampling_ratio);
    const T* plane = input + (g.batch * channels + c) * height * width;
    A sum = 0;
    for (int64_t iy = 0; iy < g.grid_h; ++iy) {
      for (int64_t ix = 0; ix < g.grid_w; ++ix) {
        A y, x;
        sample_point(g, ph, pw, iy, ix, &y, &x);
        BilinearTap<A> t;
        if (!bilinear_tap(height, width, y, x, &t)) continue;
        sum += t.w1 * Acc<T>::load(plane[t.o1]) + t.w2 * Acc<T>::load(plane[t.o2]) +
            t.w3 * Acc<T>::load(plane[t.o3]) + t.w4 * Acc<T>::load(plane[t.o4]);
      }
    }
    output[i] = Acc<T>::store(sum / g.count);
  }
}

template <typename T, typename A>
__global__ void backward_kernel(
    int64_t total, const T* __restrict__ grad, const T* __restrict__ rois, int64_t channels, int64_t height,
    int64_t width, int64_t pooled_height, int64_t pooled_width, int64_t sampling_ratio, double spatial_scale,
    A* __restrict__ grad_input) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < total; i += int64_t(blockDim.x) * gridDim.x) {
    const int64_t pw = i % pooled_width;
    const int64_t ph = (i / pooled_width) % pooled_height;
    const int64_t c = (i / (pooled_width * pooled_height)) % channels;
    const int64_t n = i / (pooled_width * pooled_height * channels);
    const RotatedRoi<A> g = load_roi(rois + n * 6, spatial_scale, pooled_height, pooled_width, sampling_ratio);
    A* plane = grad_input + (g.batch * channels + c) * height * width;
    const A value = static_cast<A>(Acc<T>::load(grad[i])) / g.count;
    for (int64_t iy = 0; iy < g.grid_h; ++iy) {
      for (int64_t ix = 0; ix < g.grid_w; ++ix) {
        A y, x;
        sample_point(g, ph, pw, iy, ix, &y, &x);
        BilinearTap<A> t;
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
    const T* input, const T* rois, int64_t num_rois, int64_t channels, int64_t height, int64_t width,
    int64_t pooled_height, int64_t pooled_width, int64_t sampling_ratio, double spatial_scale, T* output,
    cudaStream_t stream) {
  const int64_t total = num_rois * channels * pooled_height * pooled_width;
  if (total == 0) return cudaSuccess;
  forward_kernel<T><<<blocks_for(total), kThreads, 0, stream>>>(
      total, input, rois, channels, height, width, pooled_height, pooled_width, sampling_ratio, spatial_scale, output);
  return cudaGetLastError();
}

template <typename T, typename A>
cudaError_t launch_backward(
    const T* grad, const T* rois, int64_t num_rois, int64_t channels, int64_t height, int64_t width,
    int64_t pooled_height, int64_t pooled_width, int64_t sampling_ratio, double spatial_scale, A* grad_input,
    cudaStream_t stream) {
  const int64_t total = num_rois * channels * pooled_height * pooled_width;
  if (total == 0) return cudaSuccess;
  backward_kernel<T, A><<<blocks_for(total), kThreads, 0, stream>>>(
      total, grad, rois, channels, height, width, pooled_height, pooled_width, sampling_ratio, spatial_scale,
      grad_input);
  return cudaGetLastError();
}

#define D2_INSTANTIATE(T, A)                                                                                     \
  template cudaError_t launch_roi_status<T>(const T*, int64_t, int64_t, int*, cudaStream_t);                     \
  template cudaError_t launch_forward<T>(                                                                        \
      const T*, const T*, int64_t, int64_t, int64_t, int64_t, int64_t, int64_t, int64_t, double, T*, cudaStream_t); \
  template cudaError_t launch_backward<T, A>(                                                                    \
      const T*, const T*, int64_t, int64_t, int64_t, int64_t, int64_t, int64_t, int64_t, double, A*, cudaStream_t);

D2_INSTANTIATE(float, float)
D2_INSTANTIATE(double, double)
D2_INSTANTIATE(__half, float)
D2_INSTANTIATE(__nv_bfloat16, float)
#undef D2_INSTANTIATE

}  // namespace roi_align_rotated
}  // namespace detectron2
