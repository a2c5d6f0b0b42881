// The streaming CSV reader's fast path (src/data/csv-passes.ts): whole records of a plain form,
// read from the bytes straight into prepared (unscaled) feature rows and labels, exactly as the
// JavaScript reader would encode them. Anything else (quotes, comments, blanks around a field,
// missing or unparsed cells, unseen categories or classes, a field count that differs, text that
// is not ASCII, a lone CR) stops the fast path at that record, which the JavaScript reader then
// reads, errors and warnings included. So the fast path only ever skips work, never decides.
#pragma once
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

namespace maas {

enum class CsvCellAction : uint8_t {
  kSkip,        // a column the pipeline does not read
  kNumber,      // one feature: the number
  kOneHot,      // categories.size() features: a one at the category's index
  kIndex,       // one feature: the category's index (label-encoded input)
  kDate,        // ISO day: its day count, or the parts asked for
  kLabelClass,  // the label: its class index
  kLabelValue,  // the label: (value − mean) / std
};

enum class CsvDatePart : uint8_t { kYear, kMonth, kDay, kWeekday, kHour };

struct CsvFieldPlan {
  CsvCellAction action = CsvCellAction::kSkip;
  uint32_t offset = 0;                                   // the first feature it writes
  std::unordered_map<std::string_view, uint32_t> index;  // kOneHot, kIndex, kLabelClass: text → index
  // A missing cell (empty, or a marker such as NA): kNumber writes fill_number; kOneHot sets
  // fill_index (none when negative); without a fill, and for the other actions, the record is
  // the JavaScript reader's.
  bool has_fill = false;
  double fill_number = 0;
  int64_t fill_index = -1;
  std::vector<CsvDatePart> parts;  // kDate: empty means the day count
  double mean = 0, std = 1;        // kLabelValue
};

class CsvEncoder {
 public:
  // delimiter: one ASCII byte; fields: the record's field count; width: features per row.
  CsvEncoder(uint8_t delimiter, size_t fields, size_t width);

  CsvEncoder(const CsvEncoder&) = delete;
  CsvEncoder& operator=(const CsvEncoder&) = delete;

  // What field `field` becomes. texts: the dictionary of kOneHot, kIndex and kLabelClass (its
  // index is the position); parts: kDate's; mean and std: kLabelValue's. A field set twice, an
  // offset past the width or a second label is refused (false).
  bool SetField(size_t field, CsvCellAction action, size_t offset, std::vector<std::string> texts,
                std::vector<CsvDatePart> parts, double mean, double std);
  // The fill of a missing cell of field `field` (after SetField): a number for kNumber, a text
  // for kOneHot (looked up in its dictionary).
  void SetFill(size_t field, double number, const std::string& text);

  size_t width() const { return width_; }

  // Encodes whole plain records of data[start, end) into x (rows × width, zeroed here) and y,
  // at most max_rows; returns the position after the last record encoded (start when the record
  // there is not plain, or not whole) and sets *rows.
  size_t Encode(const uint8_t* data, size_t start, size_t end, float* x, float* y, size_t max_rows,
                size_t* rows) const noexcept;

 private:
  bool Record(const uint8_t* data, size_t begin, size_t end, float* x, float* y) const noexcept;

  uint8_t delimiter_;
  size_t width_;
  bool has_label_ = false;
  std::vector<CsvFieldPlan> fields_;
  // Owns what the fields' indexes view: one slot per field, sized once, each filled once.
  std::vector<std::vector<std::string>> texts_;
};

// The number the JavaScript scanner reads from a field's bytes: an optional sign, at most 15
// digits with an optional dot, an optional exponent, the value within 10^±22 of the digits; the
// product or quotient with an exact power of ten is correctly rounded. False for anything else.
bool CsvPlainNumber(const uint8_t* p, const uint8_t* e, double* out) noexcept;

// An ISO day "YYYY-MM-DD" that exists: its date, and its day count from 1970-01-01.
struct CsvDay {
  int64_t year, month, day, days;
};
// False for anything else.
bool CsvIsoDay(const uint8_t* p, const uint8_t* e, CsvDay* out) noexcept;

}  // namespace maas
