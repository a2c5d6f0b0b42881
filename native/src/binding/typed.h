// Small checked accessors for binding arguments: typed arrays (byteOffset honoured, detached and
// length checked), integers and enums. A wrong argument becomes a coded TypeError.
#pragma once
#include <napi.h>

#include <cerrno>
#include <cstring>
#include <string>

#include "addon.h"
#include "shared_region.h"

namespace maas::binding {

// The JS name of a typed array type, for messages.
inline const char* TypedArrayName(napi_typedarray_type type) {
  switch (type) {
    case napi_float32_array:
      return "Float32Array";
    case napi_float64_array:
      return "Float64Array";
    case napi_int8_array:
      return "Int8Array";
    case napi_uint8_array:
      return "Uint8Array";
    case napi_int32_array:
      return "Int32Array";
    default:
      return "typed array";
  }
}

template <typename T>
inline Napi::TypedArrayOf<T> ArgTypedArray(const Napi::CallbackInfo& info, size_t index, const char* what,
                                           napi_typedarray_type type) {
  Napi::Value v = info[index];
  if (!v.IsTypedArray() || v.As<Napi::TypedArray>().TypedArrayType() != type) {
    ThrowCoded(info.Env(), "MAAS_ERR_ARG_TYPE", std::string("expected a ") + TypedArrayName(type) + " for " + what,
               true);
  }
  return v.As<Napi::TypedArrayOf<T>>();
}

// Writable bytes: a Uint8Array, or a writable region view (createRegion's opaque `view`: a
// region may be larger than any typed array of Node 20, 4 GiB).
struct ByteSpan {
  uint8_t* data;
  size_t size;
};

inline ByteSpan ArgByteSpan(const Napi::CallbackInfo& info, size_t index, const char* what) {
  Napi::Value v = info[index];
  ByteSpan span{nullptr, 0};
  if (v.IsTypedArray() && v.As<Napi::TypedArray>().TypedArrayType() == napi_uint8_array) {
    auto t = v.As<Napi::Uint8Array>();
    return {t.Data(), t.ByteLength()};
  }
  if (RegionViewBytes(v, &span.data, &span.size)) return span;
  ThrowCoded(info.Env(), "MAAS_ERR_ARG_TYPE", std::string("expected a Uint8Array or a live region view for ") + what,
             true);
  return span;
}

// One napi_get_typedarray_info call for type, length and data: the predict path's fast check.
template <typename T>
inline T* ArgTypedData(const Napi::CallbackInfo& info, size_t index, const char* what, napi_typedarray_type type,
                       size_t* length) {
  napi_typedarray_type actual;
  void* data = nullptr;
  napi_value buffer;
  size_t offset;
  if (index >= info.Length() ||
      napi_get_typedarray_info(info.Env(), info[index], &actual, length, &data, &buffer, &offset) != napi_ok ||
      actual != type) {
    ThrowCoded(info.Env(), "MAAS_ERR_ARG_TYPE", std::string("expected a ") + TypedArrayName(type) + " for " + what,
               true);
  }
  return static_cast<T*>(data);
}

// The packed bytes a handle opens (`who` names it in errors): a Uint8Array, kept alive by `keep`,
// or a region given as { fd, byteLength }, mapped read-only into `mapping` (unmapped with it).
struct PackedBytes {
  const void* data;
  size_t size;
};

inline PackedBytes ArgPackedBytes(const Napi::CallbackInfo& info, const std::string& who, RegionMapping* mapping,
                                  Napi::ObjectReference* keep) {
  Napi::Env env = info.Env();
  if (info.Length() > 0 && info[0].IsObject() && !info[0].IsTypedArray()) {
    Napi::Object region = info[0].As<Napi::Object>();
    Napi::Value fd = region.Get("fd");
    Napi::Value length = region.Get("byteLength");
    if (!fd.IsNumber() || !length.IsNumber())
      ThrowCoded(env, "MAAS_ERR_ARG_TYPE", who + ": expected { fd, byteLength } for region", true);
    const double fd_value = fd.As<Napi::Number>().DoubleValue();
    const double byte_value = length.As<Napi::Number>().DoubleValue();
    if (!(fd_value >= 0 && fd_value < 1e9 && byte_value >= 1 && byte_value < 9007199254740991.0))
      ThrowCoded(env, "MAAS_ERR_ARG_RANGE", who + ": expected a descriptor and a byte count");
    if (!mapping->Map(static_cast<int>(fd_value), static_cast<size_t>(byte_value)))
      ThrowCoded(env, "MAAS_ERR_PACKED_MAP_FAILED", who + ": cannot map the packed weights: " + std::strerror(errno));
    return {mapping->data(), mapping->size()};
  }
  auto packed = ArgTypedArray<uint8_t>(info, 0, "packed", napi_uint8_array);
  *keep = Napi::Persistent(packed.As<Napi::Object>());
  return {packed.Data(), packed.ByteLength()};
}

inline size_t ArgSize(const Napi::CallbackInfo& info, size_t index, const char* what) {
  Napi::Value v = info[index];
  if (!v.IsNumber()) ThrowCoded(info.Env(), "MAAS_ERR_ARG_TYPE", std::string("expected a number for ") + what, true);
  const double d = v.As<Napi::Number>().DoubleValue();
  if (!(d >= 0) || d != static_cast<double>(static_cast<uint64_t>(d)) || d > 9007199254740991.0) {
    ThrowCoded(info.Env(), "MAAS_ERR_ARG_RANGE",
               std::string("expected a non-negative integer for ") + what + " but received " + std::to_string(d), true);
  }
  return static_cast<size_t>(d);
}

inline Activation ArgActivation(const Napi::CallbackInfo& info, size_t index) {
  const size_t a = ArgSize(info, index, "activation");
  if (a >= kActivationCount) ThrowCoded(info.Env(), "MAAS_ERR_ARG_RANGE", "activation code out of range", true);
  return static_cast<Activation>(a);
}

// A typed array of exactly `length` elements of `type` from arr[i], or a coded TypeError.
inline const void* ArgLayerArray(Napi::Env env, Napi::Value v, napi_typedarray_type type, size_t length,
                                 const std::string& what) {
  if (!v.IsTypedArray() || v.As<Napi::TypedArray>().TypedArrayType() != type ||
      v.As<Napi::TypedArray>().ElementLength() != length) {
    ThrowCoded(env, "MAAS_ERR_ARG_RANGE",
               what + ": expected a " + (type == napi_int8_array ? "Int8Array" : "Float32Array") + " of " +
                   std::to_string(length) + " elements",
               true);
  }
  Napi::TypedArray t = v.As<Napi::TypedArray>();
  return static_cast<const uint8_t*>(t.ArrayBuffer().Data()) + t.ByteOffset();
}

}  // namespace maas::binding
