// IoU of two (x1, y1, x2, y2) boxes, shared by the CPU and CUDA kernels of
// box_iou_batched and iou_neighbourhood_mask.
//
// Every backend (and the PyTorch reference) evaluates the same expression in
// the same order, in the same accumulation type, with no fused multiply-add:
//     inter = max(min(ax2, bx2) - max(ax1, bx1), 0) * max(min(ay2, by2) - max(ay1, by1), 0)
//     union = ((ax2 - ax1) * (ay2 - ay1) + (bx2 - bx1) * (by2 - by1)) - inter
//     iou   = union > 0 ? inter / union : 0
// so an IoU that lands exactly on the threshold compares the same way
// everywhere. A zero union (two zero-area boxes) gives 0, never NaN.
#pragma once

#ifdef __CUDACC__
#define VL_IOU_HD __host__ __device__ __forceinline__
#else
#define VL_IOU_HD inline
#endif

namespace vlengine {

// Products rounded on their own: nvcc would otherwise contract `s - a * b`
// into an FMA, which rounds differently from the other backends.
VL_IOU_HD float iou_mul(float a, float b) {
#ifdef __CUDA_ARCH__
  return __fmul_rn(a, b);
#else
  return a * b;
#endif
}

VL_IOU_HD double iou_mul(double a, double b) {
#ifdef __CUDA_ARCH__
  return __dmul_rn(a, b);
#else
  return a * b;
#endif
}

template <typename T>
VL_IOU_HD T box_area(const T* b) {
  return iou_mul(b[2] - b[0], b[3] - b[1]);
}

// `a` and `b` point at (x1, y1, x2, y2); `area_a`/`area_b` are box_area of each.
template <typename T>
VL_IOU_HD T box_iou(const T* a, const T* b, T area_a, T area_b) {
  const T left = a[0] > b[0] ? a[0] : b[0];
  const T top = a[1] > b[1] ? a[1] : b[1];
  const T right = a[2] < b[2] ? a[2] : b[2];
  const T bottom = a[3] < b[3] ? a[3] : b[3];
  T w = right - left, h = bottom - top;
  w = w > (T)0 ? w : (T)0;
  h = h > (T)0 ? h : (T)0;
  const T inter = iou_mul(w, h);
  const T uni = (area_a + area_b) - inter;
  // `uni > 0` is false for NaN too, so garbage in padded rows never yields NaN.
  // Dividing by a safe denominator and selecting afterwards (rather than
  // dividing inside the branch) lets compilers vectorise loops over boxes.
  const bool positive = uni > (T)0;
  const T ratio = inter / (positive ? uni : (T)1);
  return positive ? ratio : (T)0;
}

// The masking rule: IoU > threshold, or >= when inclusive.
template <typename T>
VL_IOU_HD bool iou_passes(T iou, T threshold, bool inclusive) {
  return inclusive ? iou >= threshold : iou > threshold;
}

}  // namespace vlengine
