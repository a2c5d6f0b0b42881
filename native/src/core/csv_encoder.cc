// The CSV fast path: see maas/csv_encoder.h. Every rule here mirrors one of the JavaScript reader
// (csv-scan.ts, csv-passes.ts, pipeline.ts' encodeRow, frame.ts' isoDay); where a rule would need
// more than a byte test, the record is left to that reader instead.
#include "maas/csv_encoder.h"

#include <cstring>

namespace maas {

namespace {

constexpr uint8_t kQuote = 0x22, kHash = 0x23, kLf = 0x0a, kCr = 0x0d;

// Exact powers of ten as doubles, as the scanner's POW10.
constexpr double kPow10[23] = {1e0,  1e1,  1e2,  1e3,  1e4,  1e5,  1e6,  1e7,  1e8,  1e9,  1e10, 1e11,
                               1e12, 1e13, 1e14, 1e15, 1e16, 1e17, 1e18, 1e19, 1e20, 1e21, 1e22};

inline bool Blank(uint8_t c) { return c == 0x20 || c == 0x09 || c == 0x0c; }
inline bool Digit(uint8_t c) { return c >= '0' && c <= '9'; }

// The texts isMissing reads as missing (table.ts' MISSING, compared case-blind); the empty field
// never reaches here.
bool MissingMarker(const uint8_t* p, const uint8_t* e) {
  static const char* const kMarkers[] = {"na", "n/a", "nan",  "null",     "none",
                                         "?",  "inf", "-inf", "infinity", "-infinity"};
  const size_t n = static_cast<size_t>(e - p);
  // Every marker is at most 9 bytes and starts with n, i, - or ? (most cells are out at once).
  const uint8_t first = p[0] | (p[0] >= 'A' && p[0] <= 'Z' ? 0x20 : 0);
  if (n > 9 || (first != 'n' && first != 'i' && first != '-' && first != '?')) return false;
  for (const char* m : kMarkers) {
    if (std::strlen(m) != n) continue;
    size_t i = 0;
    while (i < n && (p[i] | (p[i] >= 'A' && p[i] <= 'Z' ? 0x20 : 0)) == static_cast<uint8_t>(m[i])) ++i;
    if (i == n) return true;
  }
  return false;
}

bool LeapYear(int64_t y) { return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0; }

int64_t FloorDiv(int64_t a, int64_t b) { return a / b - ((a % b != 0) && ((a < 0) != (b < 0))); }

// H. Hinnant's days_from_civil, as frame.ts' daysFromCivil.
int64_t DaysFromCivil(int64_t year, int64_t month, int64_t day) {
  const int64_t y = month <= 2 ? year - 1 : year;
  const int64_t era = FloorDiv(y, 400);
  const int64_t yoe = y - era * 400;
  const int64_t doy = (153 * (month > 2 ? month - 3 : month + 9) + 2) / 5 + day - 1;
  const int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
  return era * 146097 + doe - 719468;
}

}  // namespace

bool CsvPlainNumber(const uint8_t* p, const uint8_t* e, double* out) noexcept {
  bool negative = false;
  if (p < e && (*p == '-' || *p == '+')) negative = *p++ == '-';
  double mantissa = 0;
  int digits = 0, scale = 0;
  while (p < e && Digit(*p)) {
    mantissa = mantissa * 10 + (*p++ - '0');
    ++digits;
  }
  if (p < e && *p == '.') {
    ++p;
    while (p < e && Digit(*p)) {
      mantissa = mantissa * 10 + (*p++ - '0');
      ++digits;
      --scale;
    }
  }
  if (digits == 0 || digits > 15) return false;
  if (p < e && (*p == 'e' || *p == 'E')) {
    ++p;
    bool exp_negative = false;
    if (p < e && (*p == '-' || *p == '+')) exp_negative = *p++ == '-';
    int exponent = 0, exp_digits = 0;
    while (p < e && Digit(*p) && exp_digits < 4) {
      exponent = exponent * 10 + (*p++ - '0');
      ++exp_digits;
    }
    if (exp_digits == 0) return false;
    scale += exp_negative ? -exponent : exponent;
  }
  if (p != e || scale > 22 || scale < -22) return false;
  const double value = scale >= 0 ? mantissa * kPow10[scale] : mantissa / kPow10[-scale];
  *out = negative ? -value : value;
  return true;
}

bool CsvIsoDay(const uint8_t* p, const uint8_t* e, CsvDay* out) noexcept {
  if (e - p != 10 || p[4] != '-' || p[7] != '-') return false;
  int64_t year = 0, month = 0, day = 0;
  for (int i = 0; i < 10; ++i) {
    if (i == 4 || i == 7) continue;
    if (!Digit(p[i])) return false;
    const int d = p[i] - '0';
    if (i < 4)
      year = year * 10 + d;
    else if (i < 7)
      month = month * 10 + d;
    else
      day = day * 10 + d;
  }
  static constexpr int kMonthDays[12] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
  if (month < 1 || month > 12 || day < 1) return false;
  const int64_t last = month == 2 && LeapYear(year) ? 29 : kMonthDays[month - 1];
  if (day > last) return false;
  *out = CsvDay{year, month, day, DaysFromCivil(year, month, day)};
  return true;
}

CsvEncoder::CsvEncoder(uint8_t delimiter, size_t fields, size_t width)
    : delimiter_(delimiter), width_(width), fields_(fields), texts_(fields) {}

bool CsvEncoder::SetField(size_t field, CsvCellAction action, size_t offset, std::vector<std::string> texts,
                          std::vector<CsvDatePart> parts, double mean, double std) {
  if (field >= fields_.size() || fields_[field].action != CsvCellAction::kSkip) return false;
  const bool label = action == CsvCellAction::kLabelClass || action == CsvCellAction::kLabelValue;
  if (label && has_label_) return false;
  size_t features = 0;
  if (action == CsvCellAction::kNumber || action == CsvCellAction::kIndex) features = 1;
  if (action == CsvCellAction::kOneHot) features = texts.size();
  if (action == CsvCellAction::kDate) features = parts.empty() ? 1 : parts.size();
  if (!label && (offset > width_ || features > width_ - offset)) return false;
  CsvFieldPlan& plan = fields_[field];
  plan.action = action;
  plan.offset = static_cast<uint32_t>(offset);
  plan.parts = std::move(parts);
  plan.mean = mean;
  plan.std = std;
  texts_[field] = std::move(texts);
  // A text listed twice keeps its last index, as a JavaScript Map built from the list does.
  for (size_t i = 0; i < texts_[field].size(); ++i)
    plan.index.insert_or_assign(std::string_view(texts_[field][i]), static_cast<uint32_t>(i));
  has_label_ = has_label_ || label;
  return true;
}

void CsvEncoder::SetFill(size_t field, double number, const std::string& text) {
  if (field >= fields_.size()) return;
  CsvFieldPlan& plan = fields_[field];
  plan.has_fill = true;
  plan.fill_number = number;
  const auto it = plan.index.find(std::string_view(text));
  plan.fill_index = it == plan.index.end() ? -1 : static_cast<int64_t>(it->second);
}

// One record, data[begin, end) without its line break, into x (width floats, zeroed) and *y.
bool CsvEncoder::Record(const uint8_t* data, size_t begin, size_t end, float* x, float* y) const noexcept {
  size_t field = 0, p = begin;
  const size_t fields = fields_.size();
  for (;;) {
    const size_t s = p;
    while (p < end && data[p] != delimiter_) ++p;
    if (field >= fields) return false;
    const uint8_t* fs = data + s;
    const uint8_t* fe = data + p;
    // Blanks the reader would trim are its to decide.
    if (fs != fe && (Blank(*fs) || Blank(fe[-1]))) return false;
    const CsvFieldPlan& plan = fields_[field];
    const bool missing = fs == fe || MissingMarker(fs, fe);
    if (missing && plan.action != CsvCellAction::kSkip) {
      // The saved policy of a missing cell, where it is a plain value; otherwise the reader's.
      if (!plan.has_fill) return false;
      if (plan.action == CsvCellAction::kNumber)
        x[plan.offset] = static_cast<float>(plan.fill_number);
      else if (plan.action == CsvCellAction::kOneHot && plan.fill_index >= 0)
        x[plan.offset + plan.fill_index] = 1.f;
      else if (plan.action != CsvCellAction::kOneHot)
        return false;
    } else {
      switch (plan.action) {
        case CsvCellAction::kSkip:
          break;
        case CsvCellAction::kNumber: {
          double v;
          if (!CsvPlainNumber(fs, fe, &v)) return false;
          x[plan.offset] = static_cast<float>(v);
          break;
        }
        case CsvCellAction::kOneHot:
        case CsvCellAction::kIndex:
        case CsvCellAction::kLabelClass: {
          const auto it = plan.index.find(std::string_view(reinterpret_cast<const char*>(fs), fe - fs));
          if (it == plan.index.end()) return false;
          if (plan.action == CsvCellAction::kOneHot)
            x[plan.offset + it->second] = 1.f;
          else if (plan.action == CsvCellAction::kIndex)
            x[plan.offset] = static_cast<float>(it->second);
          else
            *y = static_cast<float>(it->second);
          break;
        }
        case CsvCellAction::kDate: {
          CsvDay d;
          if (!CsvIsoDay(fs, fe, &d)) return false;
          if (plan.parts.empty()) {
            x[plan.offset] = static_cast<float>(d.days);
            break;
          }
          // The parts of an ISO day: the date itself, its weekday, and hour 0 (midnight UTC).
          uint32_t at = plan.offset;
          for (CsvDatePart part : plan.parts) {
            int64_t v = 0;
            if (part == CsvDatePart::kYear) v = d.year;
            if (part == CsvDatePart::kMonth) v = d.month;
            if (part == CsvDatePart::kDay) v = d.day;
            if (part == CsvDatePart::kWeekday) v = ((d.days + 4) % 7 + 7) % 7;
            x[at++] = static_cast<float>(v);
          }
          break;
        }
        case CsvCellAction::kLabelValue: {
          double v;
          if (!CsvPlainNumber(fs, fe, &v)) return false;
          *y = static_cast<float>((v - plan.mean) / plan.std);
          break;
        }
      }
    }
    ++field;
    if (p >= end) break;
    ++p;  // the delimiter
  }
  return field == fields;
}

size_t CsvEncoder::Encode(const uint8_t* data, size_t start, size_t end, float* x, float* y, size_t max_rows,
                          size_t* rows) const noexcept {
  size_t done = 0, p = start;
  while (done < max_rows && p < end) {
    const void* lf = std::memchr(data + p, kLf, end - p);
    if (!lf) break;
    const size_t line_end = static_cast<size_t>(static_cast<const uint8_t*>(lf) - data);
    size_t content_end = line_end;
    if (content_end > p && data[content_end - 1] == kCr) --content_end;
    // Quotes, comments and lone CRs are the reader's (its rules for them are not a byte test).
    bool plain = content_end > p;
    for (size_t i = p; plain && i < content_end; ++i) {
      const uint8_t c = data[i];
      plain = c != kQuote && c != kHash && c != kCr && c < 0x80;
    }
    float* row = x + done * width_;
    if (width_ > 0) std::memset(row, 0, width_ * sizeof(float));
    float label = 0.f;
    if (!plain || !Record(data, p, content_end, row, &label)) break;
    y[done++] = label;
    p = line_end + 1;
  }
  *rows = done;
  return p;
}

}  // namespace maas
