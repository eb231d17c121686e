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

// A single block walks the row blocks in order. Per row block: the 64 diagonal words
// are staged in shared memory by 64 threads at once, every thread then resolves the
// block's greedy chain itself from shared memory (the same answer in each thread, so
// no broadcast or extra barrier is needed), the kept positions are written in
// parallel, and all threads fold the rows of the kept boxes into the removal words of
// later blocks. The serial part thus runs on shared-memory loads only; the global
// loads (diagonal words, folds) are independent of each other and overlap.
// `removed` (col_blocks words, global memory) marks the suppressed boxes.
__global__ void nms_rotated_reduce_kernel(
    const u64* mask, int64_t n, int64_t col_blocks, u64* removed, int64_t* keep, int64_t* num_kept) {
  __shared__ u64 diag[kNmsBlock];
  const int tid = static_cast<int>(threadIdx.x);
  for (int64_t j = tid; j < col_blocks; j += blockDim.x) {
    removed[j] = 0;
  }
  int64_t count = 0;  // the same in every thread
  for (int64_t rb = 0; rb < col_blocks; ++rb) {
    const int64_t base = rb * kNmsBlock;
    const int rows = static_cast<int>(min64(kNmsBlock, n - base));
    if (tid < rows) {
      diag[tid] = mask[(base + tid) * col_blocks + rb];
    }
    __syncthreads();  // diag staged; removed[rb] final (folded before the last barrier)
    u64 rem = removed[rb];
    u64 kept = 0;
    for (int b = 0; b < rows; ++b) {
      if (!((rem >> b) & 1ULL)) {
        kept |= 1ULL << b;
        rem |= diag[b];
      }
    }
    if (tid < rows && ((kept >> tid) & 1ULL)) {
      const u64 below = kept & ((1ULL << tid) - 1ULL);  // tid < 64
      keep[count + __popcll(below)] = base + tid;
    }
    count += __popcll(kept);
    for (int64_t j = rb + 1 + tid; j < col_blocks; j += blockDim.x) {
      const u64* column = mask + base * col_blocks + j;
      u64 acc = removed[j];
      // Unrolled predicated loads: issued together instead of one round trip each
      // (a bit-scan loop waited for every load before the next). Bits >= rows are 0.
#pragma unroll 16
      for (int b = 0; b < static_cast<int>(kNmsBlock); ++b) {
        if ((kept >> b) & 1ULL) {
          acc |= column[b * col_blocks];
        }
      }
      removed[j] = acc;
    }
    __syncthreads();  // folds visible, diag free for the next row block
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
  nms_rotated_reduce_kernel<<<1, 256, 0, stream>>>(mask, n, nms_col_blocks(n), scratch, keep, num_kept);
  return cudaGetLastError();
}

template cudaError_t launch_nms_rotated_mask<float>(const float*, int64_t, double, u64*, cudaStream_t);
template cudaError_t launch_nms_rotated_mask<double>(const double*, int64_t, double, u64*, cudaStream_t);
template cudaError_t launch_nms_rotated_mask<__half>(const __half*, int64_t, double, u64*, cudaStream_t);
template cudaError_t launch_nms_rotated_mask<__nv_bfloat16>(const __nv_bfloat16*, int64_t, double, u64*, cudaStream_t);

}  // namespace detectron2
