#include "ops/box_iou_rotated/cuda/box_iou_rotated_kernel.h"

#include <algorithm>

#include "ops/box_iou_rotated/box_iou_rotated_utils.h"
#include "ops/box_iou_rotated/cuda/rotated_box_cuda_utils.cuh"

namespace detectron2 {

namespace {

constexpr int kTile = 16;  // boxes per tile side; a block of kTile x kTile threads

// Each block stages a tile of boxes1 and a tile of boxes2 in shared memory (in the
// compute type) and computes the kTile x kTile IoUs; tiles are walked grid-stride.
template <typename T>
__global__ void box_iou_rotated_kernel(const T* boxes1, const T* boxes2, int64_t n, int64_t m, T* out) {
  using C = rotated::compute_t<T>;
  __shared__ C tile1[kTile * 5];
  __shared__ C tile2[kTile * 5];
  const int64_t tiles_n = (n + kTile - 1) / kTile;
  const int64_t tiles_m = (m + kTile - 1) / kTile;
  const int tid = threadIdx.y * kTile + threadIdx.x;
  for (int64_t ti = blockIdx.y; ti < tiles_n; ti += gridDim.y) {
    for (int64_t tj = blockIdx.x; tj < tiles_m; tj += gridDim.x) {
      __syncthreads();  // the previous tile is no longer read
      if (tid < kTile * 5) {
        const int64_t k = ti * kTile * 5 + tid;
        if (k < n * 5) {
          tile1[tid] = rotated::to_compute(boxes1[k]);
        }
      } else if (tid < 2 * kTile * 5) {
        const int64_t k = tj * kTile * 5 + (tid - kTile * 5);
        if (k < m * 5) {
          tile2[tid - kTile * 5] = rotated::to_compute(boxes2[k]);
        }
      }
      __syncthreads();
      const int64_t i = ti * kTile + threadIdx.y;
      const int64_t j = tj * kTile + threadIdx.x;
      if (i < n && j < m) {
        const C iou = rotated::single_box_iou(tile1 + threadIdx.y * 5, tile2 + threadIdx.x * 5);
        out[i * m + j] = rotated::from_compute<T>(iou);
      }
    }
  }
}

}  // namespace

template <typename T>
cudaError_t launch_box_iou_rotated(const T* boxes1, const T* boxes2, int64_t n, int64_t m, T* out, cudaStream_t stream) {
  const int64_t tiles_n = (n + kTile - 1) / kTile;
  const int64_t tiles_m = (m + kTile - 1) / kTile;
  const dim3 grid(
      static_cast<unsigned>(std::min<int64_t>(tiles_m, 1 << 30)), static_cast<unsigned>(std::min<int64_t>(tiles_n, 65535)));
  const dim3 block(kTile, kTile);
  box_iou_rotated_kernel<T><<<grid, block, 0, stream>>>(boxes1, boxes2, n, m, out);
  return cudaGetLastError();
}

template cudaError_t launch_box_iou_rotated<float>(const float*, const float*, int64_t, int64_t, float*, cudaStream_t);
template cudaError_t launch_box_iou_rotated<double>(const double*, const double*, int64_t, int64_t, double*, cudaStream_t);
template cudaError_t launch_box_iou_rotated<__half>(const __half*, const __half*, int64_t, int64_t, __half*, cudaStream_t);
template cudaError_t launch_box_iou_rotated<__nv_bfloat16>(
    const __nv_bfloat16*, const __nv_bfloat16*, int64_t, int64_t, __nv_bfloat16*, cudaStream_t);

}  // namespace detectron2
