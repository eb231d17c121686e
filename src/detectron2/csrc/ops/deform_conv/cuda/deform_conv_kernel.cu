// CUDA kernels of deformable convolution: grid-stride loops over the shared element
// functions of deform_conv_utils.h. im2col gives a warp one pixel-major column row
// (lanes over channels of the NHWC input). col2im and the coordinate gradient order
// threads as (dg, channel chunk, tap, image, pixel) with the pixel fastest, so that a
// warp's reads of the channel-major column gradients and of offsets/masks are contiguous.
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

// The decomposition of a flat thread index shared by all kernels.
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
  const int64_t chunk = rest % chunks;
  t.dg = rest / chunks;
  const int64_t per = (cg + chunks - 1) / chunks;
  const int64_t group_end = (t.dg + 1) * cg;
  t.c_begin = t.dg * cg + chunk * per;
  if (t.c_begin > group_end) t.c_begin = group_end;
  t.c_end = t.c_begin + per < group_end ? t.c_begin + per : group_end;
  return t;
}

__device__ __forceinline__ int64_t task_count(const Geometry& g, int64_t chunks) {
  return g.deformable_groups * chunks * g.kernel_size() * g.batch * g.out_pixels();
}

// im2col: a warp fills one span of up to kSpanChannels channels (of one deformable group)
// in one row of the pixel-major columns (an output pixel of an image). For each chunk of
// up to kTapChunk taps, the lanes first locate the taps (one a lane) into shared memory;
// then, 32 channels at a time, each lane samples its channel at every tap of the chunk (a
// warp's corner reads are 32 adjacent NHWC channels) into a staging buffer, which the warp
// writes out as contiguous runs of the row.
constexpr int kTapChunk = 16;
constexpr int64_t kSpanChannels = 128;  // a row of 512 channels is 4 warps' work: short tails

template <typename T>
struct Im2colShared {
  TapSample<typename Scalar<T>::acc> taps[kTapChunk];
  T stage[32 * kTapChunk];  // [lane][tap of the chunk]
};

constexpr int kIm2colWarps = 8;

template <typename T>
__global__ void __launch_bounds__(kIm2colWarps * 32, 4)  // 4 blocks an SM: at most 64 registers
    im2col_kernel(const T* __restrict__ input_nhwc, const T* __restrict__ offset, const T* __restrict__ mask,
                  Geometry g, T* __restrict__ columns) {
  extern __shared__ __align__(16) unsigned char shared_bytes[];
  const int lane = threadIdx.x % 32, warps = blockDim.x / 32;
  Im2colShared<T>& sh = reinterpret_cast<Im2colShared<T>*>(shared_bytes)[threadIdx.x / 32];
  const int64_t K = g.kernel_size(), P = g.out_pixels(), C = g.channels, cg = g.group_channels();
  const int64_t spans = (cg + kSpanChannels - 1) / kSpanChannels;
  const int64_t units = g.batch * P * g.deformable_groups * spans;
  for (int64_t unit = int64_t(blockIdx.x) * warps + threadIdx.x / 32; unit < units;
       unit += int64_t(gridDim.x) * warps) {
    const int64_t row = unit / (g.deformable_groups * spans), dg = unit / spans % g.deformable_groups;
    const int64_t b = row / P, pixel = row % P;
    const int64_t c_begin = dg * cg + unit % spans * kSpanChannels;
    const int64_t c_end = c_begin + kSpanChannels < (dg + 1) * cg ? c_begin + kSpanChannels : (dg + 1) * cg;
    const T* const image = input_nhwc + b * g.height * g.width * C;
    T* const out_row = columns + row * C * K;
    for (int64_t k0 = 0; k0 < K; k0 += kTapChunk) {
      const int kc = static_cast<int>(K - k0 < kTapChunk ? K - k0 : kTapChunk);
      __syncwarp();  // the previous chunk's taps are no longer read
      if (lane < kc) sh.taps[lane] = sample_of(tap_of(g, offset, mask, b, dg, k0 + lane, pixel));
      __syncwarp();
      for (int64_t c0 = c_begin; c0 < c_end; c0 += 32) {
        const int width = static_cast<int>(c_end - c0 < 32 ? c_end - c0 : 32);
        if (lane < width) {
          const T* channel = image + c0 + lane;
#pragma unroll 4
          for (int kk = 0; kk < kc; ++kk)
            sh.stage[lane * kc + kk] = Scalar<T>::store(sample_nhwc(sh.taps[kk], channel, C));
        }
        __syncwarp();
        if (kc == K) {  // the chunk is whole channels: one contiguous run
          T* out = out_row + c0 * K;
          for (int j = lane; j < width * kc; j += 32) out[j] = sh.stage[j];
        } else {
          for (int j = lane; j < width * kc; j += 32) out_row[(c0 + j / kc) * K + k0 + j % kc] = sh.stage[j];
        }
        __syncwarp();
      }
    }
  }
}

// NCHW -> NHWC of each image ([C, H*W] -> [H*W, C]) through 32x32 shared-memory tiles,
// so that both the reads and the writes of a warp are contiguous.
template <typename T>
__global__ void nchw_to_nhwc_kernel(const T* __restrict__ input, int64_t C, int64_t HW, int64_t pixel_tiles,
                                    T* __restrict__ output) {
  __shared__ T tile[32][33];  // +1 column: the transposed reads hit 32 different banks
  const int64_t b = blockIdx.x / pixel_tiles, p0 = (blockIdx.x % pixel_tiles) * 32, c0 = int64_t(blockIdx.y) * 32;
  const T* src = input + b * C * HW;
  T* dst = output + b * C * HW;
  for (int i = threadIdx.y; i < 32; i += blockDim.y) {
    const int64_t c = c0 + i, p = p0 + threadIdx.x;
    if (c < C && p < HW) tile[i][threadIdx.x] = src[c * HW + p];
  }
  __syncthreads();
  for (int i = threadIdx.y; i < 32; i += blockDim.y) {
    const int64_t p = p0 + i, c = c0 + threadIdx.x;
    if (p < HW && c < C) dst[p * C + c] = tile[threadIdx.x][i];
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

}  // namespace

int64_t channel_chunks(const Geometry& g) {
  const int64_t taps = g.deformable_groups * g.kernel_size() * g.batch * g.out_pixels();
  if (taps <= 0) return 1;
  return std::max<int64_t>(1, std::min<int64_t>(g.group_channels(), (kTargetThreads + taps - 1) / taps));
}

template <typename T>
cudaError_t launch_im2col(const T* input_nhwc, const T* offset, const T* mask, const Geometry& g, T* columns,
                          cudaStream_t stream) {
  const int64_t spans = (g.group_channels() + kSpanChannels - 1) / kSpanChannels;
  const int64_t units = g.batch * g.out_pixels() * g.deformable_groups * spans;
  if (units == 0) return cudaSuccess;
  constexpr int kWarps = kIm2colWarps;
  static_assert(kWarps * sizeof(Im2colShared<double>) <= 48 * 1024, "above the default shared memory limit");
  const int64_t blocks = std::min<int64_t>((units + kWarps - 1) / kWarps, kMaxBlocks);
  im2col_kernel<T><<<static_cast<int>(blocks), kWarps * 32, kWarps * sizeof(Im2colShared<T>), stream>>>(
      input_nhwc, offset, mask, g, columns);
  return cudaGetLastError();
}

template <typename T>
cudaError_t launch_nchw_to_nhwc(const T* input, int64_t batch, int64_t channels, int64_t pixels, T* output,
                                cudaStream_t stream) {
  if (batch == 0 || channels == 0 || pixels == 0) return cudaSuccess;
  const int64_t pixel_tiles = (pixels + 31) / 32, channel_tiles = (channels + 31) / 32;
  if (batch * pixel_tiles > std::numeric_limits<int>::max() || channel_tiles > 65535) return cudaErrorInvalidConfiguration;
  const dim3 grid(static_cast<unsigned>(batch * pixel_tiles), static_cast<unsigned>(channel_tiles));
  nchw_to_nhwc_kernel<T><<<grid, dim3(32, 8), 0, stream>>>(input, channels, pixels, pixel_tiles, output);
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

#define D2_INSTANTIATE_DEFORM_CONV(T)                                                                               \
  static_assert(std::is_same<Scalar<T>::acc, cuda_acc<T>::type>::value, "accumulation types disagree");           \
  template cudaError_t launch_im2col<T>(const T*, const T*, const T*, const Geometry&, T*, cudaStream_t);          \
  template cudaError_t launch_nchw_to_nhwc<T>(const T*, int64_t, int64_t, int64_t, T*, cudaStream_t);            \
  template cudaError_t launch_col2im<T>(const T*, const T*, const T*, const Geometry&, cuda_acc<T>::type*,         \
                                        cudaStream_t);                                                             \
  template cudaError_t launch_coord_grad<T>(const T*, const T*, const T*, const T*, const Geometry&, T*, T*,       \
                                            cudaStream_t);                                                         \
  template cudaError_t launch_coord_grad_accumulate<T>(const T*, const T*, const T*, const T*, const Geometry&,    \
                                                       int64_t, cuda_acc<T>::type*, cuda_acc<T>::type*,            \
                                                       cudaStream_t);

D2_INSTANTIATE_DEFORM_CONV(float)
D2_INSTANTIATE_DEFORM_CONV(double)
D2_INSTANTIATE_DEFORM_CONV(__half)
D2_INSTANTIATE_DEFORM_CONV(__nv_bfloat16)

#undef D2_INSTANTIATE_DEFORM_CONV

}  // namespace deform_conv
}  // namespace detectron2
