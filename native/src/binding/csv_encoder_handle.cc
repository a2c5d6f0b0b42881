// CsvEncoderHandle: the CSV fast path (maas/csv_encoder.h) for the streaming reader of
// src/data/csv-passes.ts, which builds its spec from a fitted pipeline and the file's header.
#include <memory>
#include <string>
#include <vector>

#include "addon.h"
#include "args.h"
#include "maas/csv_encoder.h"

namespace maas::binding {

namespace {

constexpr size_t kMaxFields = 1u << 20;
constexpr size_t kMaxWidth = 1u << 24;

class CsvEncoderWrap : public Napi::ObjectWrap<CsvEncoderWrap> {
 public:
  static Napi::Function Define(Napi::Env env) {
    return DefineClass(env, "CsvEncoderHandle", {InstanceMethod<&CsvEncoderWrap::Encode>("encode")});
  }

  // new CsvEncoderHandle({ delimiter, fields, width, cells: [{ field, action, offset, texts?, parts?,
  // mean?, std?, fill? }] }): action and parts are CsvCellAction and CsvDatePart codes; fill is a
  // missing cell's number (kNumber) or category (kOneHot).
  explicit CsvEncoderWrap(const Napi::CallbackInfo& info) : Napi::ObjectWrap<CsvEncoderWrap>(info) {
    Napi::Env env = info.Env();
    if (info.Length() < 1 || !info[0].IsObject())
      ThrowCoded(env, "MAAS_ERR_ARG_TYPE", "CsvEncoderHandle: expected a spec object", true);
    const Napi::Object spec = info[0].As<Napi::Object>();
    const double delimiter = spec.Get("delimiter").ToNumber().DoubleValue();
    const double fields = spec.Get("fields").ToNumber().DoubleValue();
    const double width = spec.Get("width").ToNumber().DoubleValue();
    if (!(delimiter >= 1 && delimiter < 128 && fields >= 1 && fields <= kMaxFields && width >= 0 &&
          width <= kMaxWidth) ||
        delimiter != static_cast<int>(delimiter) || fields != static_cast<size_t>(fields) ||
        width != static_cast<size_t>(width)) {
      ThrowCoded(env, "MAAS_ERR_ARG_RANGE", "CsvEncoderHandle: delimiter, fields or width out of range", true);
    }
    encoder_ = std::make_unique<CsvEncoder>(static_cast<uint8_t>(delimiter), static_cast<size_t>(fields),
                                            static_cast<size_t>(width));
    const Napi::Value cells_value = spec.Get("cells");
    if (!cells_value.IsArray()) ThrowCoded(env, "MAAS_ERR_ARG_TYPE", "CsvEncoderHandle: expected cells[]", true);
    const Napi::Array cells = cells_value.As<Napi::Array>();
    for (uint32_t i = 0; i < cells.Length(); ++i) AddCell(env, cells.Get(i), i);
  }

 private:
  void AddCell(Napi::Env env, Napi::Value value, uint32_t i) {
    const std::string where = "CsvEncoderHandle: cell " + std::to_string(i);
    if (!value.IsObject()) ThrowCoded(env, "MAAS_ERR_ARG_TYPE", where + " is not an object", true);
    const Napi::Object cell = value.As<Napi::Object>();
    const double field = cell.Get("field").ToNumber().DoubleValue();
    const double action = cell.Get("action").ToNumber().DoubleValue();
    const double offset = cell.Get("offset").ToNumber().DoubleValue();
    if (!(field >= 0 && field < kMaxFields && action >= 0 &&
          action <= static_cast<double>(CsvCellAction::kLabelValue) && offset >= 0 && offset <= kMaxWidth) ||
        action != static_cast<int>(action)) {
      ThrowCoded(env, "MAAS_ERR_ARG_RANGE", where + ": field, action or offset out of range", true);
    }
    std::vector<std::string> texts;
    const Napi::Value texts_value = cell.Get("texts");
    if (texts_value.IsArray()) {
      const Napi::Array list = texts_value.As<Napi::Array>();
      texts.reserve(list.Length());
      for (uint32_t k = 0; k < list.Length(); ++k) texts.push_back(list.Get(k).ToString().Utf8Value());
    }
    std::vector<CsvDatePart> parts;
    const Napi::Value parts_value = cell.Get("parts");
    if (parts_value.IsArray()) {
      const Napi::Array list = parts_value.As<Napi::Array>();
      for (uint32_t k = 0; k < list.Length(); ++k) {
        const double part = list.Get(k).ToNumber().DoubleValue();
        if (!(part >= 0 && part <= static_cast<double>(CsvDatePart::kHour)) || part != static_cast<int>(part))
          ThrowCoded(env, "MAAS_ERR_ARG_RANGE", where + ": a date part out of range", true);
        parts.push_back(static_cast<CsvDatePart>(static_cast<int>(part)));
      }
    }
    const double mean = cell.Has("mean") ? cell.Get("mean").ToNumber().DoubleValue() : 0;
    const double std = cell.Has("std") ? cell.Get("std").ToNumber().DoubleValue() : 1;
    if (!encoder_->SetField(static_cast<size_t>(field), static_cast<CsvCellAction>(static_cast<int>(action)),
                            static_cast<size_t>(offset), std::move(texts), std::move(parts), mean, std)) {
      ThrowCoded(env, "MAAS_ERR_ARG_RANGE",
                 where + ": a field set twice, a second label, or features past the row's width", true);
    }
    const Napi::Value fill = cell.Get("fill");
    if (fill.IsNumber()) encoder_->SetFill(static_cast<size_t>(field), fill.As<Napi::Number>().DoubleValue(), "");
    if (fill.IsString()) encoder_->SetFill(static_cast<size_t>(field), 0, fill.As<Napi::String>().Utf8Value());
  }

  // encode(data: Uint8Array, start, end, x: Float32Array, y: Float32Array, next: Float64Array):
  // the rows encoded into x and y (as many as both hold); next[0] is where the reader goes on.
  Napi::Value Encode(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    if (info.Length() < 6) ThrowCoded(env, "MAAS_ERR_ARG_TYPE", "encode: expected 6 arguments", true);
    auto data = ArgTypedArray<uint8_t>(info, 0, "data", napi_uint8_array);
    const size_t start = ArgSize(info, 1, "start"), end = ArgSize(info, 2, "end");
    size_t x_length = 0, y_length = 0, next_length = 0;
    float* x = ArgTypedData<float>(info, 3, "x", napi_float32_array, &x_length);
    float* y = ArgTypedData<float>(info, 4, "y", napi_float32_array, &y_length);
    double* next = ArgTypedData<double>(info, 5, "next", napi_float64_array, &next_length);
    if (start > end || end > data.ByteLength() || next_length < 1)
      ThrowCoded(env, "MAAS_ERR_ARG_RANGE", "encode: start and end must lie within data", true);
    const size_t width = encoder_->width();
    size_t max_rows = width == 0 ? y_length : x_length / width;
    if (y_length < max_rows) max_rows = y_length;
    size_t rows = 0;
    next[0] = static_cast<double>(encoder_->Encode(data.Data(), start, end, x, y, max_rows, &rows));
    return Napi::Number::New(env, static_cast<double>(rows));
  }

  std::unique_ptr<CsvEncoder> encoder_;
};

}  // namespace

void RegisterCsvEncoderHandle(Napi::Env env, Napi::Object exports) {
  exports.Set("CsvEncoderHandle", CsvEncoderWrap::Define(env));
}

}  // namespace maas::binding
