// SPDX-FileCopyrightText: 2026 The fasa authors
// SPDX-License-Identifier: Apache-2.0
#pragma once

// What every CUDA file of fasa shares: error checks that become fasa::error, an owning device
// buffer, the element types of the cache (bf16, fp16, fp32) with 16-byte vector loads, and the
// view of a KVStorage layout that the kernels stream (fasa/policies/storage/*.hpp hold the math;
// this only names which of its row functions a kernel reads).

#if !defined(__CUDACC__)
#error \
    "fasa/backends/cuda/*.cuh must be compiled by nvcc; plain C++ reaches the CUDA backend through a compiled bridge"
#endif

#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <sys/mman.h>
#include <unistd.h>

#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <type_traits>
#include <utility>
#include <vector>

#include "fasa/core/error.hpp"
#include "fasa/policies/storage/contiguous.hpp"
#include "fasa/policies/storage/split_dominant.hpp"
#include "fasa/policies/storage/split_offload.hpp"

namespace fasa::cuda {

inline void throw_on_error(cudaError_t e, const char* what, const char* function, const char* file,
                           int line) {
  if (e == cudaSuccess) return;
  detail::throw_error(function, file, line,
                      detail::concat("CUDA error in ", what, ": ", cudaGetErrorName(e), " (",
                                     cudaGetErrorString(e), ")"));
}

}  // namespace fasa::cuda

// Checks a CUDA runtime call; a failure throws fasa::error naming the call.
#define FASA_CUDA_CHECK(call) \
  ::fasa::cuda::throw_on_error((call), #call, __func__, __FILE__, __LINE__)
// Checks the last kernel launch (bad configuration, missing image for this GPU).
#define FASA_CUDA_CHECK_LAUNCH(name) \
  ::fasa::cuda::throw_on_error(cudaGetLastError(), name, __func__, __FILE__, __LINE__)

namespace fasa::cuda {

// An owning array in device memory (cudaMalloc; never managed memory).
template <class T>
class device_buffer {
 public:
  device_buffer() = default;
  explicit device_buffer(std::size_t n) { resize(n); }
  ~device_buffer() { release(); }
  device_buffer(device_buffer&& o) noexcept
      : ptr_(std::exchange(o.ptr_, nullptr)), size_(std::exchange(o.size_, 0)) {}
  device_buffer& operator=(device_buffer&& o) noexcept {
    if (this != &o) {
      release();
      ptr_ = std::exchange(o.ptr_, nullptr);
      size_ = std::exchange(o.size_, 0);
    }
    return *this;
  }
  device_buffer(const device_buffer&) = delete;
  device_buffer& operator=(const device_buffer&) = delete;

  // Reallocates (contents are lost) unless the size is unchanged.
  void resize(std::size_t n) {
    if (n == size_) return;
    release();
    if (n > 0) FASA_CUDA_CHECK(cudaMalloc(reinterpret_cast<void**>(&ptr_), n * sizeof(T)));
    size_ = n;
  }
  void upload(const std::vector<T>& host) {
    resize(host.size());
    if (!host.empty())
      FASA_CUDA_CHECK(
          cudaMemcpy(ptr_, host.data(), host.size() * sizeof(T), cudaMemcpyHostToDevice));
  }
  std::vector<T> download() const {
    std::vector<T> host(size_);
    if (size_ > 0)
      FASA_CUDA_CHECK(cudaMemcpy(host.data(), ptr_, size_ * sizeof(T), cudaMemcpyDeviceToHost));
    return host;
  }
  T* data() { return ptr_; }
  const T* data() const { return ptr_; }
  std::size_t size() const { return size_; }
  std::size_t bytes() const { return size_ * sizeof(T); }

 private:
  void release() noexcept {
    if (ptr_ != nullptr) cudaFree(ptr_);
    ptr_ = nullptr;
    size_ = 0;
  }
  T* ptr_ = nullptr;
  std::size_t size_ = 0;
};

// An owning array in pinned host memory mapped into the GPU's address space (cudaHostAlloc,
// mapped and portable): the host writes it directly, kernels read it over the bus through
// device_data(). A request beyond the machine's memory, or one the driver cannot pin, is an
// error naming the size and the purpose before any work starts.
template <class T>
class pinned_buffer {
 public:
  pinned_buffer() = default;
  ~pinned_buffer() { release(); }
  pinned_buffer(const pinned_buffer&) = delete;
  pinned_buffer& operator=(const pinned_buffer&) = delete;

  // huge_pages: the memory is taken in 2 MiB-aligned transparent huge pages (madvise), then
  // pinned (cudaHostRegister): fewer translations for the GPU's scattered reads; else
  // cudaHostAlloc.
  void allocate(std::size_t n, const char* purpose, bool huge_pages = false) {
    release();
    if (n == 0) return;
    const double gib = static_cast<double>(n * sizeof(T)) / 1073741824.0;
    const long pages = sysconf(_SC_PHYS_PAGES), page = sysconf(_SC_PAGE_SIZE);
    if (pages > 0 && page > 0) {
      const double have = static_cast<double>(pages) * static_cast<double>(page) / 1073741824.0;
      FASA_CHECK(gib <= 0.9 * have, purpose, " needs ", gib,
                 " GiB of pinned host memory; this "
                 "machine has ",
                 have,
                 " GiB in all (at most 90 % of it can be pinned): use a "
                 "smaller batch or capacity");
    }
    cudaError_t e = cudaSuccess;
    if (huge_pages) {
      constexpr std::size_t huge = std::size_t{2} << 20;
      const std::size_t bytes = (n * sizeof(T) + huge - 1) / huge * huge;
      void* p = std::aligned_alloc(huge, bytes);
      FASA_CHECK(p != nullptr, purpose, ": could not allocate ", gib, " GiB of host memory");
      (void)madvise(p, bytes, MADV_HUGEPAGE);  // a hint: without THP, ordinary pages
      std::memset(p, 0, bytes);                // fault the pages in before pinning
      e = cudaHostRegister(p, bytes, cudaHostRegisterMapped | cudaHostRegisterPortable);
      if (e != cudaSuccess) {
        std::free(p);
      } else {
        ptr_ = static_cast<T*>(p);
        registered_ = true;
      }
    } else {
      e = cudaHostAlloc(reinterpret_cast<void**>(&ptr_), n * sizeof(T),
                        cudaHostAllocMapped | cudaHostAllocPortable);
    }
    if (e != cudaSuccess) {
      ptr_ = nullptr;
      (void)cudaGetLastError();
      FASA_CHECK(false, purpose, ": could not pin ", gib, " GiB of host memory (",
                 cudaGetErrorName(e), ": ", cudaGetErrorString(e),
                 "); use a smaller batch or capacity, or raise the locked-memory limit");
    }
    FASA_CUDA_CHECK(cudaHostGetDevicePointer(reinterpret_cast<void**>(&dev_), ptr_, 0));
    size_ = n;
  }
  T* data() { return ptr_; }
  T* device_data() { return dev_; }
  std::size_t size() const { return size_; }
  std::size_t bytes() const { return size_ * sizeof(T); }

 private:
  void release() noexcept {
    if (ptr_ != nullptr && registered_) {
      cudaHostUnregister(ptr_);
      std::free(ptr_);
    } else if (ptr_ != nullptr) {
      cudaFreeHost(ptr_);
    }
    ptr_ = dev_ = nullptr;
    registered_ = false;
    size_ = 0;
  }
  T* ptr_ = nullptr;
  T* dev_ = nullptr;
  bool registered_ = false;
  std::size_t size_ = 0;
};

// ---- element types --------------------------------------------------------------------------

template <class Elem>
struct elem_traits;

template <>
struct elem_traits<__nv_bfloat16> {
  static constexpr const char* name = "bf16";
  static __host__ __device__ __nv_bfloat16 from_float(float x) { return __float2bfloat16(x); }
  static __host__ __device__ float to_float(__nv_bfloat16 x) { return __bfloat162float(x); }
};
template <>
struct elem_traits<__half> {
  static constexpr const char* name = "fp16";
  static __host__ __device__ __half from_float(float x) { return __float2half(x); }
  static __host__ __device__ float to_float(__half x) { return __half2float(x); }
};
template <>
struct elem_traits<float> {
  static constexpr const char* name = "fp32";
  static __host__ __device__ float from_float(float x) { return x; }
  static __host__ __device__ float to_float(float x) { return x; }
};

// Elements per 16-byte vector.
template <class Elem>
inline constexpr int vec_elems = 16 / static_cast<int>(sizeof(Elem));

// Converts one 16-byte vector of Elem to floats.
template <class Elem>
__device__ __forceinline__ void to_floats(const uint4& raw, float (&out)[vec_elems<Elem>]) {
  if constexpr (std::is_same_v<Elem, __half>) {
    const auto* two = reinterpret_cast<const __half2*>(&raw);
#pragma unroll
    for (int i = 0; i < 4; ++i) {
      const float2 f = __half22float2(two[i]);
      out[2 * i] = f.x;
      out[2 * i + 1] = f.y;
    }
  } else if constexpr (std::is_same_v<Elem, __nv_bfloat16>) {
    const auto* two = reinterpret_cast<const __nv_bfloat162*>(&raw);
#pragma unroll
    for (int i = 0; i < 4; ++i) {
      const float2 f = __bfloat1622float2(two[i]);
      out[2 * i] = f.x;
      out[2 * i + 1] = f.y;
    }
  } else {
    out[0] = __uint_as_float(raw.x);
    out[1] = __uint_as_float(raw.y);
    out[2] = __uint_as_float(raw.z);
    out[3] = __uint_as_float(raw.w);
  }
}

// One 16-byte load (the address must be 16-byte aligned) through the read-only path.
template <class Elem>
__device__ __forceinline__ uint4 load_raw(const Elem* p) {
  return __ldg(reinterpret_cast<const uint4*>(p));
}

// Asynchronous 16-byte global-to-shared copy (sm_80+), bypassing L1: the cache is read once.
__device__ __forceinline__ void cp_async16(void* smem, const void* gmem) {
  const unsigned s = static_cast<unsigned>(__cvta_generic_to_shared(smem));
  asm volatile("cp.async.cg.shared.global [%0], [%1], 16;\n" ::"r"(s), "l"(gmem));
}
__device__ __forceinline__ void cp_async_commit() { asm volatile("cp.async.commit_group;\n"); }
// Waits until at most N of this thread's committed groups are still in flight.
template <int N>
__device__ __forceinline__ void cp_async_wait() {
  asm volatile("cp.async.wait_group %0;\n" ::"n"(N));
}

// ---- programmatic dependent launch (sm_90+) ---------------------------------------------------
//
// Every kernel of a decode step starts with this: it lets the next kernel in the stream be
// launched as soon as all of this grid's blocks are running (so that launch overlaps this
// kernel's work instead of following its end), then waits until the previous kernel has
// finished and its memory writes are visible. Where a kernel was launched without the
// programmatic-serialisation attribute (split_options::pdl off) both are no-ops and the stream
// orders kernels as usual; either way no kernel touches memory before its predecessor is done.
__device__ __forceinline__ void grid_dependency_sync() {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  asm volatile("griddepcontrol.launch_dependents;\n" ::: "memory");
  asm volatile("griddepcontrol.wait;\n" ::: "memory");
#endif
}

// ---- bulk copies through the tensor memory accelerator (sm_90+) ------------------------------
//
// One thread asks for a whole contiguous run of bytes (16-byte aligned, a multiple of 16) to be
// copied into shared memory; the copy signals an mbarrier by the bytes it delivered, and readers
// wait on the barrier's phase. Compiled to a trap below sm_90 (the host never launches it there).

__device__ __forceinline__ unsigned smem_addr(const void* p) {
  return static_cast<unsigned>(__cvta_generic_to_shared(p));
}
// Initialises a barrier that one arrival (with its expected bytes) completes; then a fence and a
// block barrier before any use.
__device__ __forceinline__ void mbarrier_init(std::uint64_t* bar) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  asm volatile("mbarrier.init.shared::cta.b64 [%0], 1;\n" ::"r"(smem_addr(bar)) : "memory");
  asm volatile("fence.mbarrier_init.release.cluster;\n" ::: "memory");
#else
  __trap();
#endif
}
// Copies `bytes` from global `src` to shared `dst`; `bar`'s current phase completes when they
// have landed.
__device__ __forceinline__ void bulk_copy_to_shared(void* dst, const void* src, unsigned bytes,
                                                    std::uint64_t* bar) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  asm volatile("mbarrier.arrive.expect_tx.shared::cta.b64 _, [%0], %1;\n" ::"r"(smem_addr(bar)),
               "r"(bytes)
               : "memory");
  asm volatile(
      "cp.async.bulk.shared::cluster.global.mbarrier::complete_tx::bytes [%0], [%1], %2, [%3];\n" ::
          "r"(smem_addr(dst)),
      "l"(src), "r"(bytes), "r"(smem_addr(bar))
      : "memory");
#else
  __trap();
#endif
}
// Orders this thread's view of shared memory (the block's reads of a slot, made visible to it by
// a block barrier) before its later bulk copies into that memory: the copies run in the async
// proxy, which a block barrier alone does not order against the generic proxy's accesses.
__device__ __forceinline__ void fence_proxy_async_shared() {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  asm volatile("fence.proxy.async.shared::cta;\n" ::: "memory");
#else
  __trap();
#endif
}
// Waits until the phase of `bar` with this parity (0 for its first, then alternating) completes.
__device__ __forceinline__ void mbarrier_wait(std::uint64_t* bar, unsigned parity) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  unsigned done = 0;
  do {
    asm volatile(
        "{\n .reg .pred p;\n mbarrier.try_wait.parity.shared::cta.b64 p, [%1], %2;\n"
        " selp.u32 %0, 1, 0, p;\n}\n"
        : "=r"(done)
        : "r"(smem_addr(bar)), "r"(parity)
        : "memory");
  } while (done == 0);
#else
  __trap();
#endif
}

// ---- thread block clusters (sm_90+) ------------------------------------------------------------
//
// The blocks of a cluster run at once on one GPU processing cluster and can read each other's
// shared memory (distributed shared memory). Compiled to a trap below sm_90 (the host never
// launches a cluster there).

// This block's rank in its cluster and the cluster's size in blocks.
struct cluster_place {
  unsigned rank, blocks;
};
__device__ __forceinline__ cluster_place cluster_position() {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  cluster_place p{};
  asm volatile("mov.u32 %0, %%cluster_ctarank;\n mov.u32 %1, %%cluster_nctarank;\n"
               : "=r"(p.rank), "=r"(p.blocks));
  return p;
#else
  __trap();
  return {};
#endif
}
// The two halves of a cluster barrier: memory written before a thread's arrive is visible to
// every thread of the cluster after its wait that completes the same phase. Every thread of the
// cluster must call them, alternately, with its warp converged; work between the two overlaps
// the other blocks' arrival.
__device__ __forceinline__ void cluster_arrive() {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  asm volatile("barrier.cluster.arrive.release.aligned;\n" ::: "memory");
#else
  __trap();
#endif
}
__device__ __forceinline__ void cluster_wait() {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  asm volatile("barrier.cluster.wait.acquire.aligned;\n" ::: "memory");
#else
  __trap();
#endif
}
// A whole cluster barrier.
__device__ __forceinline__ void cluster_sync() {
  cluster_arrive();
  cluster_wait();
}
// `local` (a place in this block's shared memory) in block `rank` of the cluster, as a generic
// pointer: plain loads and atomics through it reach that block's shared memory.
template <class T>
__device__ __forceinline__ T* cluster_map(T* local, unsigned rank) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  std::uint64_t remote = 0;
  asm("mapa.u64 %0, %1, %2;\n"
      : "=l"(remote)
      : "l"(reinterpret_cast<std::uint64_t>(local)), "r"(rank));
  return reinterpret_cast<T*>(remote);
#else
  __trap();
  return local;
#endif
}

// ---- the cache layouts, as the kernels stream them -------------------------------------------
//
// A key row is read in storage order as two parts: `first` (width first_width) and `second`
// (the rest). For contiguous the first part is the whole row; for split_dominant it is the
// dominant-dim slab, so TIP streams the first part alone. dim_at(h, j) is the natural dim held
// at storage position j; kernels permute the query into that order once per step, so a dot
// product over a stored row never indexes dims one by one. Values are in natural dim order.

template <class St>
struct layout;

template <>
struct layout<storage::contiguous> {
  using St = storage::contiguous;
  static __host__ __device__ int first_width(const St& s) { return s.head_dim(); }
  static __host__ __device__ std::int64_t first_row(const St& s, int h, std::int64_t t) {
    return s.key_row(h, t);
  }
  static __host__ __device__ std::int64_t second_row(const St& s, int h, std::int64_t t) {
    return s.key_row(h, t) + s.head_dim();  // empty
  }
  static __host__ __device__ std::int64_t value_row(const St& s, int h, std::int64_t t) {
    return s.value_row(h, t);
  }
  static __host__ __device__ int dim_at(const St&, int, int j) { return j; }
  static St device_copy(const St& s, device_buffer<std::int32_t>&) { return s; }
};

template <>
struct layout<storage::split_dominant> {
  using St = storage::split_dominant;
  static __host__ __device__ int first_width(const St& s) { return s.slab_width; }
  static __host__ __device__ std::int64_t first_row(const St& s, int h, std::int64_t t) {
    return s.slab_row(h, t);
  }
  static __host__ __device__ std::int64_t second_row(const St& s, int h, std::int64_t t) {
    return s.rest_row(h, t);
  }
  static __host__ __device__ std::int64_t value_row(const St& s, int h, std::int64_t t) {
    return s.value_row(h, t);
  }
  static __host__ __device__ int dim_at(const St& s, int h, int j) { return s.dim_at(h, j); }
  // The same layout with its perm/slot tables copied to the device (kept alive by `tables`).
  static St device_copy(const St& s, device_buffer<std::int32_t>& tables) {
    const std::size_t n = static_cast<std::size_t>(s.kv_heads) * static_cast<std::size_t>(s.dim);
    std::vector<std::int32_t> host(2 * n);
    std::memcpy(host.data(), s.perm, n * sizeof(std::int32_t));
    std::memcpy(host.data() + n, s.slot, n * sizeof(std::int32_t));
    tables.upload(host);
    St d = s;
    d.perm = tables.data();
    d.slot = tables.data() + n;
    return d;
  }
};

// FASA-M's layout streams as split_dominant's: TIP reads the slab (the near tier); the rest and
// the values are far (host memory) and reach the attention kernels through fetch_rows.
template <>
struct layout<storage::split_offload> : layout<storage::split_dominant> {
  using St = storage::split_offload;
  static St device_copy(const St& s, device_buffer<std::int32_t>& tables) {
    return St::of(layout<storage::split_dominant>::device_copy(s, tables));
  }
};

template <class St>
concept StreamedLayout = requires {
  sizeof(layout<St>);
};

}  // namespace fasa::cuda
