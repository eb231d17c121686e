// CUDA kernels of deformable convolution: grid-stride loops over the shared element
// functions of deform_conv_utils.h. Thread index order is (dg, channel chunk, tap,
// image, pixel) with the pixel fastest, so that column reads/writes and offset/mask
// reads of a warp are contiguous.
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <algorithm>
#include <limits>
#include <type_traits>

#include "ops/deform_conv/cuda/deform_conv_kernel.h"
#include "ops/deform_conv/deform_conv_utils.h"

namespace detectron2 {
namespace deform_conv {

// Half types load into and store from float (explicit intrinsics: torch builds with
// __CUDA_NO_HALF_CONVERSIONS__).
template <>
struct Scalar<__half> {
  using acc = float;
  static __host__ __device__ __forceinline__ float load(__half v) { return __half2float(v); }
  static __host__ __device__ __forceinline__ __half store(float v) { return __float2half(v); }
};
template <>
struct Scalar<__nv_bfloat16> {
  using acc = float;
  static __host__ __device__ __forceinline__ float load(__nv_bfloat16 v) { return __bfloat162float(v); }
  static __host__ __device__ __forceinline__ __nv_bfloat16 store(float v) { return __float2bfloat16(v); }
};

namespace {

constexpr int kThreads = 256;
constexpr int64_t kMaxBlocks = int64_t(1) << 16;
// About the number of threads an H100 keeps resident (132 SMs x 2048).
constexpr int64_t kTargetThreads = int64_t(1) << 18;

int blocks_for(int64_t total) {
  return static_cast<int>(std::max<int64_t>(1, std::min<int64_t>((total + kThreads - 1) / kThreads, kMaxBlocks)));
}

__device__ __forceinline__ void atomic_add(float* address, float v) { atomicAdd(address, v); }

__device__ __forceinline__ void atomic_add(double* address, double v) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ < 600
  // Native double atomicAdd needs sm_60; compare-and-swap elsewhere.
  auto* as_ull = reinterpret_cast<unsigned long long*>(address);
  unsigned long long old = *as_ull, assumed;
  do {
    assumed = old;
    old = atomicCAS(as_ull, assumed, __double_as_longlong(v + __longlong_as_double(assumed)));
  } while (assumed != old);
#else
  atomicAdd(address, v);
#endif
}

struct AtomicAdd {
  template <typename acc_t>
  __device__ static void add(acc_t* p, acc_t v) {
    atomic_add(p, v);
  }
};

// The decomposition of a flat thread index shared by the kernels other than im2col.
struct TaskIndex {
  int64_t dg, c_begin, c_end, k, b, pixel;
};

__device__ __forceinline__ TaskIndex task_of(const Geometry& g, int64_t chunks, int64_t idx) {
  const int64_t P = g.out_pixels(), N = g.batch * P, K = g.kernel_size(), cg = g.group_channels();
  TaskIndex t;
  const int64_t column = idx % N;
  int64_t rest = idx / N;
  t.b = column / P;
  t.pixel = column % P;
  t.k = rest % K;
  rest /= K;
  t.dg = rest / chunks;
  chunk_channels<int64_t>(t.dg, rest % chunks, chunks, cg, &t.c_begin, &t.c_end);
  return t;
}

__device__ __forceinline__ int64_t task_count(const Geometry& g, int64_t chunks) {
  return g.deformable_groups * chunks * g.kernel_size() * g.batch * g.out_pixels();
}

// im2col on a 2-D grid: y walks the (deformable group, channel chunk, tap) tasks, x the
// columns (image, pixel). A task is the same for a whole block, so a thread divides only
// to locate its column, in 32-bit arithmetic where the call's indices fit (I = int32_t).
// The 32-bit kernel's launch bounds (5 blocks of 256 an SM, at most 51 registers) made it
// 5-12% faster at every benchmark size on an H200 than ptxas's own choice at the same
// register count (benchmarks/results/h200-2026-12-03-session8, calls 4 and 5). The 64-bit
// kernel would spill under them: 3 blocks (at most 85 registers) keeps it near the 72
// registers it takes unbounded.
template <typename I>
constexpr int im2col_min_blocks() {
  return std::is_same<I, int32_t>::value ? 5 : 3;
}

template <typename T, typename I>
__global__ void __launch_bounds__(kThreads, im2col_min_blocks<I>())
    im2col_kernel(const T* __restrict__ input, const T* __restrict__ offset, const T* __restrict__ mask, Geometry g,
                  I chunks, T* __restrict__ columns) {
  const I K = I(g.kernel_size()), P = I(g.out_pixels()), cg = I(g.group_channels());
  const int64_t tasks = g.deformable_groups * int64_t(chunks) * K, width = g.column_width();
  for (int64_t task = blockIdx.y; task < tasks; task += gridDim.y) {
    const I k = I(task % K), dg = I(task / K / chunks);
    I c_begin, c_end;
    chunk_channels<I>(dg, I(task / K % chunks), chunks, cg, &c_begin, &c_end);
    if (c_begin >= c_end) continue;
    for (int64_t column = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; column < width;
         column += int64_t(blockDim.x) * gridDim.x) {
      const I b = I(column) / P, pixel = I(column) - b * P;
      im2col_element<T, I>(g, input, offset, mask, b, dg, k, pixel, c_begin, c_end, columns);
    }
  }
}

template <typename T>
__global__ void col2im_kernel(const T* grad_columns, const T* offset, const T* mask, Geometry g, int64_t chunks,
                              typename Scalar<T>::acc* grad_input) {
  const int64_t total = task_count(g, chunks);
  for (int64_t idx = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; idx < total;
       idx += int64_t(blockDim.x) * gridDim.x) {
    const TaskIndex t = task_of(g, chunks, idx);
    if (t.c_begin < t.c_end)
      col2im_element<T, AtomicAdd>(g, grad_columns, offset, mask, t.b, t.dg, t.k, t.pixel, t.c_begin, t.c_end,
                                   grad_input);
  }
}

template <typename T>
__global__ void coord_grad_kernel(const T* grad_columns, const T* input, const T* offset, const T* mask, Geometry g,
                                  T* grad_offset, T* grad_mask) {
  const int64_t total = task_count(g, 1);
  for (int64_t idx = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; idx < total;
       idx += int64_t(blockDim.x) * gridDim.x) {
    const TaskIndex t = task_of(g, 1, idx);
    store_coord_grad(
        g, coord_grad_element(g, grad_columns, input, offset, mask, t.b, t.dg, t.k, t.pixel, t.c_begin, t.c_end),
        grad_offset, grad_mask);
  }
}

template <typename T>
__global__ void coord_grad_accumulate_kernel(const T* grad_columns, const T* input, const T* offset, const T* mask,
                                             Geometry g, int64_t chunks, typename Scalar<T>::acc* grad_offset,
                                             typename Scalar<T>::acc* grad_mask) {
  const int64_t total = task_count(g, chunks);
  for (int64_t idx = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; idx < total;
       idx += int64_t(blockDim.x) * gridDim.x) {
    const TaskIndex t = task_of(g, chunks, idx);
    if (t.c_begin >= t.c_end) continue;
    const CoordGrad<T> r =
        coord_grad_element(g, grad_columns, input, offset, mask, t.b, t.dg, t.k, t.pixel, t.c_begin, t.c_end);
    atomic_add(grad_offset + r.offset_index, r.dy);
    atomic_add(grad_offset + r.offset_index + g.out_pixels(), r.dx);
    if (grad_mask != nullptr) atomic_add(grad_mask + r.mask_index, r.dmask);
  }
}

// The forward GEMM's rows [n][P][M] (pixel-major) to the NCHW output [n][M][P], plus the
// bias: a transpose through shared-memory tiles, so that both the reads and the writes of
// a warp are contiguous (a strided elementwise copy reaches a third of the bandwidth).
constexpr int kTile = 32, kTileRows = 8;

template <typename T>
__global__ void rows_to_nchw_kernel(const T* __restrict__ rows, const T* __restrict__ bias, int64_t batch,
                                    int64_t pixels, int64_t channels, T* __restrict__ out) {
  using acc_t = typename Scalar<T>::acc;
  __shared__ T tile[kTile][kTile + 1];  // +1: no bank conflicts on the transposed read
  const int64_t p0 = int64_t(blockIdx.x) * kTile, m0 = int64_t(blockIdx.y) * kTile;
  for (int64_t b = blockIdx.z; b < batch; b += gridDim.z) {
    const T* src = rows + b * pixels * channels;
    T* dst = out + b * channels * pixels;
    for (int r = threadIdx.y; r < kTile; r += kTileRows) {
      const int64_t p = p0 + r, m = m0 + threadIdx.x;
      if (p < pixels && m < channels) tile[r][threadIdx.x] = src[p * channels + m];
    }
    __syncthreads();
    for (int r = threadIdx.y; r < kTile; r += kTileRows) {
      const int64_t m = m0 + r, p = p0 + threadIdx.x;
      if (p < pixels && m < channels) {
        acc_t v = Scalar<T>::load(tile[threadIdx.x][r]);
        if (bias != nullptr) v += Scalar<T>::load(bias[m]);
        dst[m * pixels + p] = Scalar<T>::store(v);
      }
    }
    __syncthreads();  // the tile is rewritten for the next image
  }
}

}  // namespace

int64_t channel_chunks(const Geometry& g) {
  const int64_t taps = g.deformable_groups * g.kernel_size() * g.batch * g.out_pixels();
  if (taps <= 0) return 1;
  return std::max<int64_t>(1, std::min<int64_t>(g.group_channels(), (kTargetThreads + taps - 1) / taps));
}

// im2col splits channels further than the other kernels (they reduce over channels, im2col
// does not): a thread then samples at most kIm2colChannels channels at the tap it located,
// which keeps enough independent gathers in flight on large maps.
namespace {

constexpr int64_t kIm2colChannels = 16;

int64_t im2col_chunks(const Geometry& g) {
  const int64_t cg = g.group_channels();
  return std::max<int64_t>(channel_chunks(g), std::min<int64_t>(cg, (cg + kIm2colChannels - 1) / kIm2colChannels));
}

// Whether every index im2col computes fits in int32_t: the element offsets into the input,
// offset, mask and column buffers, and the sampling positions before their offsets.
bool im2col_fits_int32(const Geometry& g) {
  constexpr int64_t limit = std::numeric_limits<int32_t>::max();
  const int64_t input = g.batch * g.channels * g.height * g.width;
  const int64_t offsets = 2 * g.batch * g.deformable_groups * g.kernel_size() * g.out_pixels();
  const int64_t columns = g.channels * g.kernel_size() * g.column_width();
  const int64_t reach_h = g.out_h * g.stride_h + g.pad_h + g.kernel_h * g.dilation_h;
  const int64_t reach_w = g.out_w * g.stride_w + g.pad_w + g.kernel_w * g.dilation_w;
  return std::max({input, offsets, columns, reach_h, reach_w}) < limit;
}

template <typename T, typename I>
void launch_im2col_as(const T* input, const T* offset, const T* mask, const Geometry& g, int64_t chunks,
                      T* columns, cudaStream_t stream) {
  const int64_t tasks = g.deformable_groups * chunks * g.kernel_size();
  const dim3 grid(static_cast<unsigned>(std::min<int64_t>((g.column_width() + kThreads - 1) / kThreads, kMaxBlocks)),
                  static_cast<unsigned>(std::min<int64_t>(tasks, 65535)));  // more tasks: the kernel loops
  im2col_kernel<T, I><<<grid, kThreads, 0, stream>>>(input, offset, mask, g, static_cast<I>(chunks), columns);
}

}  // namespace

template <typename T>
cudaError_t launch_im2col(const T* input, const T* offset, const T* mask, const Geometry& g, T* columns,
                          cudaStream_t stream) {
  const int64_t chunks = im2col_chunks(g);
  if (g.deformable_groups * chunks * g.kernel_size() * g.column_width() == 0) return cudaSuccess;
  if (im2col_fits_int32(g)) {
    launch_im2col_as<T, int32_t>(input, offset, mask, g, chunks, columns, stream);
  } else {
    launch_im2col_as<T, int64_t>(input, offset, mask, g, chunks, columns, stream);
  }
  return cudaGetLastError();
}

template <typename T>
cudaError_t launch_col2im(const T* grad_columns, const T* offset, const T* mask, const Geometry& g,
                          typename cuda_acc<T>::type* grad_input, cudaStream_t stream) {
  const int64_t chunks = channel_chunks(g);
  const int64_t total = g.deformable_groups * chunks * g.kernel_size() * g.batch * g.out_pixels();
  if (total == 0) return cudaSuccess;
  col2im_kernel<T><<<blocks_for(total), kThreads, 0, stream>>>(grad_columns, offset, mask, g, chunks, grad_input);
  return cudaGetLastError();
}

template <typename T>
cudaError_t launch_coord_grad(const T* grad_columns, const T* input, const T* offset, const T* mask,
                              const Geometry& g, T* grad_offset, T* grad_mask, cudaStream_t stream) {
  const int64_t total = g.deformable_groups * g.kernel_size() * g.batch * g.out_pixels();
  if (total == 0) return cudaSuccess;
  coord_grad_kernel<T><<<blocks_for(total), kThreads, 0, stream>>>(grad_columns, input, offset, mask, g, grad_offset,
                                                                   grad_mask);
  return cudaGetLastError();
}

template <typename T>
cudaError_t launch_coord_grad_accumulate(const T* grad_columns, const T* input, const T* offset, const T* mask,
                                         const Geometry& g, int64_t chunks, typename cuda_acc<T>::type* grad_offset,
                                         typename cuda_acc<T>::type* grad_mask, cudaStream_t stream) {
  const int64_t total = g.deformable_groups * chunks * g.kernel_size() * g.batch * g.out_pixels();
  if (total == 0) return cudaSuccess;
  coord_grad_accumulate_kernel<T><<<blocks_for(total), kThreads, 0, stream>>>(grad_columns, input, offset, mask, g,
                                                                              chunks, grad_offset, grad_mask);
  return cudaGetLastError();
}

template <typename T>
cudaError_t launch_rows_to_nchw(const T* rows, const T* bias, int64_t batch, int64_t pixels, int64_t channels, T* out,
                                cudaStream_t stream) {
  if (batch == 0 || pixels == 0 || channels == 0) return cudaSuccess;
  const dim3 grid(static_cast<unsigned>((pixels + kTile - 1) / kTile),
                  static_cast<unsigned>((channels + kTile - 1) / kTile),
                  static_cast<unsigned>(std::min<int64_t>(batch, 65535)));  // more images: the kernel loops
  rows_to_nchw_kernel<T><<<grid, dim3(kTile, kTileRows), 0, stream>>>(rows, bias, batch, pixels, channels, out);
  return cudaGetLastError();
}

#define D2_INSTANTIATE_DEFORM_CONV(T)                                                                               \
  static_assert(std::is_same<Scalar<T>::acc, cuda_acc<T>::type>::value, "accumulation types disagree");           \
  template cudaError_t launch_im2col<T>(const T*, const T*, const T*, const Geometry&, T*, cudaStream_t);          \
  template cudaError_t launch_col2im<T>(const T*, const T*, const T*, const Geometry&, cuda_acc<T>::type*,         \
                                        cudaStream_t);                                                             \
  template cudaError_t launch_coord_grad<T>(const T*, const T*, const T*, const T*, const Geometry&, T*, T*,       \
                                            cudaStream_t);                                                         \
  template cudaError_t launch_coord_grad_accumulate<T>(const T*, const T*, const T*, const T*, const Geometry&,    \
                                                       int64_t, cuda_acc<T>::type*, cuda_acc<T>::type*,            \
                                                       cudaStream_t);                                              \
  template cudaError_t launch_rows_to_nchw<T>(const T*, const T*, int64_t, int64_t, int64_t, T*, cudaStream_t);

D2_INSTANTIATE_DEFORM_CONV(float)
D2_INSTANTIATE_DEFORM_CONV(double)
D2_INSTANTIATE_DEFORM_CONV(__half)
D2_INSTANTIATE_DEFORM_CONV(__nv_bfloat16)

#undef D2_INSTANTIATE_DEFORM_CONV

}  // namespace deform_conv
}  // namespace detectron2
