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

// Threads per row box in the mask kernel, each taking every kSplit-th column of the
// block: at 2k boxes there are only 528 (row block, column block) pairs, and with one
// thread per row most SMs held a few warps of long serial IoU loops.
constexpr int kSplit = 4;

// One block of 64 * kSplit threads per (row block, column block) pair with col >= row;
// thread (part, r) compares row box r against columns part, part + kSplit, ... of the
// column block staged in shared memory, and the partial words are OR-ed in shared memory.
template <typename T>
__global__ void __launch_bounds__(kNmsBlock * kSplit)
    nms_rotated_mask_kernel(const T* boxes, int64_t n, int64_t col_blocks, double threshold, u64* mask) {
  using C = rotated::compute_t<T>;
  __shared__ C cols[kNmsBlock * 5];
  __shared__ u64 partial[kSplit][kNmsBlock];
  const int tid = threadIdx.x;
  const int r = tid % kNmsBlock, part = tid / kNmsBlock;
  for (int64_t rb = blockIdx.y; rb < col_blocks; rb += gridDim.y) {
    for (int64_t cb = blockIdx.x; cb < col_blocks; cb += gridDim.x) {
      if (cb < rb) {
        continue;  // uniform over the block: never read by the reduction
      }
      const int rows = static_cast<int>(min64(kNmsBlock, n - rb * kNmsBlock));
      const int ncols = static_cast<int>(min64(kNmsBlock, n - cb * kNmsBlock));
      __syncthreads();  // the previous column block and partial words are no longer read
      for (int e = tid; e < ncols * 5; e += blockDim.x) {
        cols[e] = rotated::to_compute(boxes[cb * kNmsBlock * 5 + e]);
      }
      __syncthreads();
      u64 bits = 0;
      if (r < rows) {
        const int64_t i = rb * kNmsBlock + r;
        C row[5];
        for (int k = 0; k < 5; ++k) {
          row[k] = rotated::to_compute(boxes[i * 5 + k]);
        }
        const int first = cb == rb ? r + 1 : 0;  // only later boxes
        for (int k = first + ((part - first) % kSplit + kSplit) % kSplit; k < ncols; k += kSplit) {
          if (static_cast<double>(rotated::single_box_iou(row, cols + k * 5)) > threshold) {
            bits |= 1ULL << k;
          }
        }
      }
      partial[part][r] = bits;
      __syncthreads();
      if (part == 0 && r < rows) {
        u64 word = 0;
        for (int q = 0; q < kSplit; ++q) word |= partial[q][r];
        mask[(rb * kNmsBlock + r) * col_blocks + cb] = word;
      }
    }
  }
}

// Mask words staged in shared memory per row block and tile: 64 rows x kTile words (32 KiB).
constexpr int kTile = 64;

// Loads rows [base, base + rows) x words [j0, j0 + width) of the mask into `slab`, all
// threads at once with coalesced, independent loads (the rows of a row block are one
// contiguous stretch of the mask). Rows whose bit in `rows_wanted` is clear read as 0.
__device__ __forceinline__ void stage_slab(const u64* mask, int64_t col_blocks, int64_t base, int rows, int64_t j0,
                                           int width, u64 rows_wanted, u64 (*slab)[kTile]) {
  for (int e = static_cast<int>(threadIdx.x); e < rows * width; e += static_cast<int>(blockDim.x)) {
    const int b = e / width, c = e % width;
    slab[b][c] = ((rows_wanted >> b) & 1ULL) ? mask[(base + b) * col_blocks + j0 + c] : 0ULL;
  }
}

// One block walks the row blocks in order; `removed` (col_blocks words, global memory)
// marks the suppressed boxes. Per row block: the block's mask rows are staged in shared
// memory for the diagonal word and the first kTile later words (one round of loads, not
// one per kept box), every thread resolves the block's greedy chain from the diagonal
// words itself (the same answer in each thread, so no broadcast), the kept positions are
// written in parallel, and the kept rows are OR-ed into the removal words of later
// blocks, staging further tiles only for wide masks.
__global__ void nms_rotated_reduce_kernel(
    const u64* mask, int64_t n, int64_t col_blocks, u64* removed, int64_t* keep, int64_t* num_kept) {
  __shared__ u64 slab[kNmsBlock][kTile];
  const int tid = static_cast<int>(threadIdx.x);
  for (int64_t j = tid; j < col_blocks; j += blockDim.x) {
    removed[j] = 0;
  }
  int64_t count = 0;  // the same in every thread
  for (int64_t rb = 0; rb < col_blocks; ++rb) {
    const int64_t base = rb * kNmsBlock;
    const int rows = static_cast<int>(min64(kNmsBlock, n - base));
    int width = static_cast<int>(min64(kTile, col_blocks - rb));
    stage_slab(mask, col_blocks, base, rows, rb, width, ~0ULL, slab);
    __syncthreads();  // slab staged; removed[rb] final (folded before the last barrier)
    u64 rem = removed[rb];
    u64 kept = 0;
    for (int b = 0; b < rows; ++b) {
      if (!((rem >> b) & 1ULL)) {
        kept |= 1ULL << b;
        rem |= slab[b][0];
      }
    }
    if (tid < rows && ((kept >> tid) & 1ULL)) {
      const u64 below = kept & ((1ULL << tid) - 1ULL);  // tid < 64
      keep[count + __popcll(below)] = base + tid;
    }
    count += __popcll(kept);
    for (int64_t j0 = rb;;) {
      for (int c = tid; c < width; c += blockDim.x) {
        if (j0 + c == rb) continue;  // the diagonal word: resolved above
        u64 acc = removed[j0 + c];
        for (int b = 0; b < rows; ++b) acc |= ((kept >> b) & 1ULL) ? slab[b][c] : 0ULL;
        removed[j0 + c] = acc;
      }
      __syncthreads();  // folds visible; the slab is free
      j0 += width;
      if (j0 >= col_blocks) break;
      width = static_cast<int>(min64(kTile, col_blocks - j0));
      stage_slab(mask, col_blocks, base, rows, j0, width, kept, slab);
      __syncthreads();
    }
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
  nms_rotated_mask_kernel<T><<<dim3(g, g), kNmsBlock * kSplit, 0, stream>>>(sorted_boxes, n, col_blocks, iou_threshold, mask);
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
