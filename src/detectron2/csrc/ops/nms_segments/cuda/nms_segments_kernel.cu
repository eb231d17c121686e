// Segmented NMS on the GPU: one launch builds the suppression bitmasks of every
// (image, segment) pair, a second resolves all of them in parallel, one thread block
// per segment, settling 64 boxes per step (a serial pass over a 64x64 diagonal tile in
// shared memory, then a parallel OR of the kept rows into the later words).
#include "ops/nms_segments/cuda/nms_segments_kernel.h"

namespace detectron2 {

namespace {

using u64 = unsigned long long;
constexpr int kTile = 64;
constexpr int kGatherThreads = 128;

// Round-to-nearest arithmetic that nvcc may not contract into FMAs: the IoU then equals
// the one computed on the host, operation by operation.
__device__ __forceinline__ float sub_rn(float a, float b) { return __fsub_rn(a, b); }
__device__ __forceinline__ float add_rn(float a, float b) { return __fadd_rn(a, b); }
__device__ __forceinline__ float mul_rn(float a, float b) { return __fmul_rn(a, b); }
__device__ __forceinline__ float div_rn(float a, float b) { return __fdiv_rn(a, b); }
__device__ __forceinline__ double sub_rn(double a, double b) { return __dsub_rn(a, b); }
__device__ __forceinline__ double add_rn(double a, double b) { return __dadd_rn(a, b); }
__device__ __forceinline__ double mul_rn(double a, double b) { return __dmul_rn(a, b); }
__device__ __forceinline__ double div_rn(double a, double b) { return __ddiv_rn(a, b); }

template <typename T>
__device__ __forceinline__ T box_area(const T* b) {
  return mul_rn(sub_rn(b[2], b[0]), sub_rn(b[3], b[1]));
}

template <typename T>
__device__ __forceinline__ bool iou_above(const T* a, T area_a, const T* b, T threshold) {
  const T w = max(T(0), sub_rn(min(a[2], b[2]), max(a[0], b[0])));
  const T h = max(T(0), sub_rn(min(a[3], b[3]), max(a[1], b[1])));
  const T inter = mul_rn(w, h);
  return div_rn(inter, sub_rn(add_rn(area_a, box_area(b)), inter)) > threshold;
}

// grid (images * segments, col tiles, row tiles), kTile threads.
template <typename T>
__global__ void nms_segments_mask_kernel(const T* boxes, int64_t k, NmsSegmentBounds bounds, int64_t max_len,
                                         T threshold, u64* mask) {
  const int64_t pair = blockIdx.x;
  const int seg = static_cast<int>(pair % bounds.num_segments);
  const int64_t img = pair / bounds.num_segments;
  const int64_t start = bounds.at[seg], n = bounds.at[seg + 1] - start;
  const int64_t col_tile = blockIdx.y, row_tile = blockIdx.z;
  if (col_tile < row_tile || row_tile * kTile >= n || col_tile * kTile >= n) {
    return;  // the whole block leaves together
  }
  const int64_t col_blocks = nms_segments_col_blocks(max_len);
  const int64_t rows_left = n - row_tile * kTile, cols_left = n - col_tile * kTile;
  const int rows = rows_left < kTile ? static_cast<int>(rows_left) : kTile;
  const int cols = cols_left < kTile ? static_cast<int>(cols_left) : kTile;
  const T* seg_boxes = boxes + (img * k + start) * 4;

  __shared__ T tile[kTile * 4];
  const int t = threadIdx.x;
  if (t < cols) {
    const T* src = seg_boxes + (col_tile * kTile + t) * 4;
#pragma unroll
    for (int d = 0; d < 4; ++d) {
      tile[t * 4 + d] = src[d];
    }
  }
  __syncthreads();
  if (t >= rows) {
    return;
  }
  const int64_t i = row_tile * kTile + t;
  T box[4];
#pragma unroll
  for (int d = 0; d < 4; ++d) {
    box[d] = seg_boxes[i * 4 + d];
  }
  const T area = box_area(box);
  u64 bits = 0;
  for (int j = (col_tile == row_tile) ? t + 1 : 0; j < cols; ++j) {
    if (iou_above(box, area, tile + j * 4, threshold)) {
      bits |= 1ULL << j;
    }
  }
  mask[(pair * max_len + i) * col_blocks + col_tile] = bits;
}

// grid (images * segments), kGatherThreads threads, col_blocks words of shared memory.
__global__ void nms_segments_gather_kernel(const u64* mask, const bool* valid, int64_t k, NmsSegmentBounds bounds,
                                           int64_t max_len, bool* keep) {
  extern __shared__ u64 removed[];
  __shared__ u64 diag[kTile];
  __shared__ u64 kept_word;
  const int64_t pair = blockIdx.x;
  const int seg = static_cast<int>(pair % bounds.num_segments);
  const int64_t img = pair / bounds.num_segments;
  const int64_t start = bounds.at[seg], n = bounds.at[seg + 1] - start;
  const int64_t col_blocks = nms_segments_col_blocks(max_len);
  const int64_t tiles = nms_segments_col_blocks(n);
  const bool* seg_valid = valid + img * k + start;
  bool* seg_keep = keep + img * k + start;
  const u64* seg_mask = mask + pair * max_len * col_blocks;
  const int t = threadIdx.x;

  // Invalid boxes (and the padding past n) start out removed: never kept, never suppressing.
  for (int64_t c = t; c < tiles; c += blockDim.x) {
    u64 word = 0;
    for (int b = 0; b < kTile; ++b) {
      const int64_t p = c * kTile + b;
      if (p >= n || !seg_valid[p]) {
        word |= 1ULL << b;
      }
    }
    removed[c] = word;
  }
  __syncthreads();
  for (int64_t tile_id = 0; tile_id < tiles; ++tile_id) {
    const int64_t base = tile_id * kTile;
    if (t < kTile) {
      diag[t] = base + t < n ? seg_mask[(base + t) * col_blocks + tile_id] : 0ULL;
    }
    __syncthreads();
    if (t == 0) {
      u64 gone = removed[tile_id], kept = 0;
      for (int b = 0; b < kTile; ++b) {
        if (!((gone >> b) & 1ULL)) {
          kept |= 1ULL << b;
          gone |= diag[b];
        }
      }
      kept_word = kept;
    }
    __syncthreads();
    const u64 kept = kept_word;
    if (t < kTile && base + t < n) {
      seg_keep[base + t] = (kept >> t) & 1ULL;
    }
    for (int64_t c = tile_id + 1 + t; c < tiles; c += blockDim.x) {
      u64 acc = removed[c];
      for (u64 w = kept; w != 0; w &= w - 1) {
        const int b = __ffsll(static_cast<long long>(w)) - 1;
        acc |= seg_mask[(base + b) * col_blocks + c];
      }
      removed[c] = acc;
    }
    __syncthreads();
  }
}

}  // namespace

template <typename T>
cudaError_t launch_nms_segments_mask(const T* boxes, int64_t num_images, int64_t k, const NmsSegmentBounds& bounds,
                                     int64_t max_len, double iou_threshold, u64* mask, cudaStream_t stream) {
  const unsigned int tiles = static_cast<unsigned int>(nms_segments_col_blocks(max_len));
  const dim3 grid(static_cast<unsigned int>(num_images * bounds.num_segments), tiles, tiles);
  nms_segments_mask_kernel<T><<<grid, kTile, 0, stream>>>(boxes, k, bounds, max_len, static_cast<T>(iou_threshold),
                                                          mask);
  return cudaGetLastError();
}

cudaError_t launch_nms_segments_gather(const u64* mask, const bool* valid, int64_t num_images, int64_t k,
                                       const NmsSegmentBounds& bounds, int64_t max_len, bool* keep,
                                       cudaStream_t stream) {
  const size_t shared = static_cast<size_t>(nms_segments_col_blocks(max_len)) * sizeof(u64);
  const unsigned int blocks = static_cast<unsigned int>(num_images * bounds.num_segments);
  nms_segments_gather_kernel<<<blocks, kGatherThreads, shared, stream>>>(mask, valid, k, bounds, max_len, keep);
  return cudaGetLastError();
}

template cudaError_t launch_nms_segments_mask<float>(const float*, int64_t, int64_t, const NmsSegmentBounds&,
                                                     int64_t, double, u64*, cudaStream_t);
template cudaError_t launch_nms_segments_mask<double>(const double*, int64_t, int64_t, const NmsSegmentBounds&,
                                                      int64_t, double, u64*, cudaStream_t);

}  // namespace detectron2
