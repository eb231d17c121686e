#include "ops/nms_rotated/cuda/nms_rotated_kernel.h"

#include <algorithm>

#include "ops/box_iou_rotated/box_iou_rotated_utils.h"
#include "ops/box_iou_rotated/cuda/rotated_box_cuda_utils.cuh"

namespace detectron2 {

namespace {

using u64 = unsigned long long;

// By value: std::min would take the host constant kNmsBlock by reference in device code.
__device__ __forceinline__ int64_t min64(int64_t a, int64_t b) {
  return a < b ? a : b;
}

// One block of 64 threads per (row block, column block) pair with col >= row; each
// thread compares its row box against the column block staged in shared memory.
template <typename T>
__global__ void nms_rotated_mask_kernel(const T* boxes, int64_t n, int64_t col_blocks, double threshold, u64* mask) {
  using C = rotated::compute_t<T>;
  __shared__ C cols[kNmsBlock * 5];
  const int tid = threadIdx.x;
  for (int64_t rb = blockIdx.y; rb < col_blocks; rb += gridDim.y) {
    for (int64_t cb = blockIdx.x; cb < col_blocks; cb += gridDim.x) {
      if (cb < rb) {
        continue;  // uniform over the block: never read by the reduction
      }
      const int64_t rows = min64(kNmsBlock, n - rb * kNmsBlock);
      const int64_t ncols = min64(kNmsBlock, n - cb * kNmsBlock);
      __syncthreads();  // the previous column block is no longer read
      if (tid < ncols) {
        for (int k = 0; k < 5; ++k) {
          cols[tid * 5 + k] = rotated::to_compute(boxes[(cb * kNmsBlock + tid) * 5 + k]);
        }
      }
      __syncthreads();
      if (tid < rows) {
        const int64_t i = rb * kNmsBlock + tid;
        C row[5];
        for (int k = 0; k < 5; ++k) {
          row[k] = rotated::to_compute(boxes[i * 5 + k]);
        }
        u64 bits = 0;
        for (int64_t k = (cb == rb ? tid + 1 : 0); k < ncols; ++k) {
          if (static_cast<double>(rotated::single_box_iou(row, cols + k * 5)) > threshold) {
            bits |= 1ULL << k;
          }
        }
        mask[i * col_blocks + cb] = bits;
      }
    }
  }
}

// A single block walks the row blocks in order: thread 0 resolves the 64 boxes of
// the current block serially (using the block's diagonal words), then all threads
// fold the rows of the kept boxes into the removal words of later blocks.
__global__ void nms_rotated_reduce_kernel(
    const u64* mask, int64_t n, int64_t col_blocks, bool use_shared, u64* scratch, int64_t* keep, int64_t* num_kept) {
  extern __shared__ u64 shared_removed[];
  __shared__ u64 kept_bits;
  u64* removed = use_shared ? shared_removed : scratch;
  for (int64_t j = threadIdx.x; j < col_blocks; j += blockDim.x) {
    removed[j] = 0;
  }
  __syncthreads();
  int64_t count = 0;  // meaningful in thread 0
  for (int64_t rb = 0; rb < col_blocks; ++rb) {
    const int64_t base = rb * kNmsBlock;
    if (threadIdx.x == 0) {
      const int64_t rows = min64(kNmsBlock, n - base);
      u64 rem = removed[rb];
      u64 kept = 0;
      for (int64_t b = 0; b < rows; ++b) {
        if (!((rem >> b) & 1ULL)) {
          kept |= 1ULL << b;
          keep[count++] = base + b;
          rem |= mask[(base + b) * col_blocks + rb];
        }
      }
      kept_bits = kept;
    }
    __syncthreads();
    const u64 kept = kept_bits;
    for (int64_t j = rb + 1 + threadIdx.x; j < col_blocks; j += blockDim.x) {
      u64 acc = removed[j];
      u64 rest = kept;
      while (rest) {
        const int b = __ffsll(static_cast<long long>(rest)) - 1;
        rest &= rest - 1;
        acc |= mask[(base + b) * col_blocks + j];
      }
      removed[j] = acc;
    }
    __syncthreads();
  }
  if (threadIdx.x == 0) {
    *num_kept = count;
  }
}

}  // namespace

template <typename T>
cudaError_t launch_nms_rotated_mask(
    const T* sorted_boxes, int64_t n, double iou_threshold, u64* mask, cudaStream_t stream) {
  const int64_t col_blocks = nms_col_blocks(n);
  const unsigned g = static_cast<unsigned>(std::min<int64_t>(col_blocks, 65535));
  nms_rotated_mask_kernel<T><<<dim3(g, g), kNmsBlock, 0, stream>>>(sorted_boxes, n, col_blocks, iou_threshold, mask);
  return cudaGetLastError();
}

cudaError_t launch_nms_rotated_reduce(
    const u64* mask, int64_t n, u64* scratch, int64_t* keep, int64_t* num_kept, cudaStream_t stream) {
  const int64_t col_blocks = nms_col_blocks(n);
  const size_t bytes = static_cast<size_t>(col_blocks) * sizeof(u64);
  const bool use_shared = bytes <= 32 * 1024;  // well below the default 48 KiB limit
  nms_rotated_reduce_kernel<<<1, 256, use_shared ? bytes : 0, stream>>>(
      mask, n, col_blocks, use_shared, scratch, keep, num_kept);
  return cudaGetLastError();
}

template cudaError_t launch_nms_rotated_mask<float>(const float*, int64_t, double, u64*, cudaStream_t);
template cudaError_t launch_nms_rotated_mask<double>(const double*, int64_t, double, u64*, cudaStream_t);
template cudaError_t launch_nms_rotated_mask<__half>(const __half*, int64_t, double, u64*, cudaStream_t);
template cudaError_t launch_nms_rotated_mask<__nv_bfloat16>(const __nv_bfloat16*, int64_t, double, u64*, cudaStream_t);

}  // namespace detectron2
