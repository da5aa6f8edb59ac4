// RoIAlign geometry shared by the CPU and CUDA kernels, so both follow
// torchvision's roi_align arithmetic exactly (legacy and aligned modes,
// adaptive and fixed sampling) and differ only in how they loop.
#pragma once

#include <cmath>
#include <cstdint>

#ifdef __CUDACC__
#define VL_HOST_DEVICE __host__ __device__ __forceinline__
#else
#define VL_HOST_DEVICE inline
#endif

namespace vlengine {

template <typename T>
struct RoiGeometry {
  T start_h, start_w;    // top-left corner in feature-map coordinates
  T bin_h, bin_w;        // size of one output bin
  int grid_h, grid_w;    // sample points per bin along each axis
  T count;               // number of samples averaged per bin (>= 1)
};

// `roi` points at (x1, y1, x2, y2) of one RoI (the batch index already read).
template <typename T>
VL_HOST_DEVICE RoiGeometry<T> roi_geometry(const T* box, T spatial_scale, int pooled_h, int pooled_w,
                                           int sampling_ratio, bool aligned) {
  RoiGeometry<T> g;
  // aligned=True shifts by half a pixel so that box corners fall on pixel centres.
  const T offset = aligned ? (T)0.5 : (T)0.0;
  g.start_w = box[0] * spatial_scale - offset;
  g.start_h = box[1] * spatial_scale - offset;
  const T end_w = box[2] * spatial_scale - offset;
  const T end_h = box[3] * spatial_scale - offset;
  T roi_w = end_w - g.start_w;
  T roi_h = end_h - g.start_h;
  if (!aligned) {
    // Legacy mode (VL-BERT's): RoIs are at least one cell wide.
    roi_w = roi_w > (T)1. ? roi_w : (T)1.;
    roi_h = roi_h > (T)1. ? roi_h : (T)1.;
  }
  g.bin_h = roi_h / static_cast<T>(pooled_h);
  g.bin_w = roi_w / static_cast<T>(pooled_w);
  g.grid_h = sampling_ratio > 0 ? sampling_ratio : static_cast<int>(ceil(roi_h / pooled_h));
  g.grid_w = sampling_ratio > 0 ? sampling_ratio : static_cast<int>(ceil(roi_w / pooled_w));
  const int n = g.grid_h * g.grid_w;
  g.count = static_cast<T>(n > 1 ? n : 1);
  return g;
}

template <typename T>
VL_HOST_DEVICE T sample_y(const RoiGeometry<T>& g, int ph, int iy) {
  return g.start_h + ph * g.bin_h + static_cast<T>(iy + .5f) * g.bin_h / static_cast<T>(g.grid_h);
}

template <typename T>
VL_HOST_DEVICE T sample_x(const RoiGeometry<T>& g, int pw, int ix) {
  return g.start_w + pw * g.bin_w + static_cast<T>(ix + .5f) * g.bin_w / static_cast<T>(g.grid_w);
}

// The four cells a bilinear sample reads and their weights. A weight is zero
// when the sample lies outside the map or the cell is masked.
template <typename T>
struct BilinearTaps {
  int64_t y0, x0, y1, x1;
  T w00, w01, w10, w11;
};

template <typename T>
VL_HOST_DEVICE BilinearTaps<T> bilinear_taps(T y, T x, int64_t height, int64_t width) {
  BilinearTaps<T> t{0, 0, 0, 0, (T)0, (T)0, (T)0, (T)0};
  if (y < -1.0 || y > height || x < -1.0 || x > width) return t;  // outside: contributes 0
  if (y <= 0) y = 0;
  if (x <= 0) x = 0;
  t.y0 = static_cast<int64_t>(y);
  t.x0 = static_cast<int64_t>(x);
  if (t.y0 >= height - 1) {
    t.y1 = t.y0 = height - 1;
    y = (T)t.y0;
  } else {
    t.y1 = t.y0 + 1;
  }
  if (t.x0 >= width - 1) {
    t.x1 = t.x0 = width - 1;
    x = (T)t.x0;
  } else {
    t.x1 = t.x0 + 1;
  }
  const T ly = y - t.y0, lx = x - t.x0;
  const T hy = (T)1. - ly, hx = (T)1. - lx;
  t.w00 = hy * hx;
  t.w01 = hy * lx;
  t.w10 = ly * hx;
  t.w11 = ly * lx;
  return t;
}

// Zero the weights of taps that fall on masked cells. `cell_mask` is the
// [H, W] plane of the RoI's image (nonzero = masked), or nullptr.
template <typename T>
VL_HOST_DEVICE void drop_masked_taps(BilinearTaps<T>& t, const uint8_t* cell_mask, int64_t width) {
  if (cell_mask == nullptr) return;
  if (cell_mask[t.y0 * width + t.x0]) t.w00 = (T)0;
  if (cell_mask[t.y0 * width + t.x1]) t.w01 = (T)0;
  if (cell_mask[t.y1 * width + t.x0]) t.w10 = (T)0;
  if (cell_mask[t.y1 * width + t.x1]) t.w11 = (T)0;
}

// VL-BERT's pixel rule for one box edge pair: cells floor(lo*scale) ..
// floor(hi*scale), clamped to [0, size-1]. Returns false when nothing is left.
VL_HOST_DEVICE bool masked_cell_range(double lo, double hi, double scale, int64_t size, int64_t& first,
                                      int64_t& last) {
  double a = floor(lo * scale), b = floor(hi * scale);
  if (b < 0 || a > (double)(size - 1)) return false;
  first = a < 0 ? 0 : static_cast<int64_t>(a);
  last = b > (double)(size - 1) ? size - 1 : static_cast<int64_t>(b);
  return first <= last;
}

}  // namespace vlengine
