// How the Hugging Face `datasets` library sees a dataset repo: its configs (subsets), each config's splits and the
// data files of every split, from the repo's file list and the dataset card's metadata (the README's YAML, as the
// Hub serves it in "cardData"), or from the Hub's Parquet conversion branch (refs/convert/parquet). No network here:
// the caller lists the files and passes the card.
#ifndef TUNEFORGE_COMMON_HUB_DATASET_LAYOUT_H_
#define TUNEFORGE_COMMON_HUB_DATASET_LAYOUT_H_

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "nlohmann/json.hpp"

namespace tuneforge {

// The branch where the Hub keeps a Parquet copy of every dataset it can read.
inline constexpr char kParquetConversionRevision[] = "refs/convert/parquet";

struct HubDataSplit {
  std::string name;                // as the datasets library names it: "train", "validation", "test", or the repo's own
  std::vector<std::string> files;  // repo paths, sorted
  int64_t num_rows = -1;           // from the card's dataset_info, -1 when it does not say
  int64_t num_bytes = -1;          // likewise
  bool partial = false;            // Parquet conversion only: the Hub converted only the first part of this split
};

struct HubDataFeature {
  std::string name;
  std::string type;  // as tuneforge's features: string, int, float, bool, list, object or mixed
};

struct HubDataConfig {
  std::string name;
  // The datasets library's builder for these files: "json", "csv", "parquet" (the ones tuneforge reads), or another
  // (e.g. "text", "arrow", "imagefolder", "webdataset") that it does not.
  std::string module;
  // Why tuneforge cannot read these files (another module, compressed or tab-separated files); empty when it can.
  std::string unreadable;
  std::vector<HubDataSplit> splits;       // in the datasets library's order: train, validation, test, then others
  std::vector<HubDataFeature> features;   // from the card's dataset_info; empty when it does not say
};

struct HubDatasetLayout {
  std::vector<HubDataConfig> configs;  // in the card's order; one "default" config when the card declares none
  std::string default_config;          // "" when there are several and none is the default (the user must choose)
  bool from_card = false;              // configs were declared in the card's `configs`
};

// The layout of a repo's own files. `paths` are every file of the commit ('/'-separated, relative to the root);
// `card_data` the Hub's cardData (null or an object). Follows the datasets library: the card's `configs` with their
// `data_files` (a pattern, a list of patterns, or a list of {split, path}) and `data_dir`; without them, shards named
// data/{split}-NNNNN-of-NNNNN.*, then split names in directory names, then in file names (train/training,
// validation/valid/dev/val, test/testing/eval/evaluation), else every file is train. Hidden files and folders and
// folders starting with "__" are skipped unless a pattern names them; README.md and the infos files never count.
// Errors (INVALID_ARGUMENT naming `field`): a malformed card `configs` entry, several defaults, a config whose
// patterns match no data file.
absl::StatusOr<HubDatasetLayout> ResolveHubDatasetLayout(const std::vector<std::string>& paths,
                                                        const nlohmann::json& card_data, std::string_view field);

// The layout of the Parquet conversion branch: {config}/{split}/NNNN.parquet, {config}/partial-{split}/NNNN.parquet
// (the Hub converted only the first part), and the older {config}/{name}-{split}[-NNNNN-of-NNNNN].parquet. Row and
// byte counts come from `card_data`'s dataset_info when given (the main branch's card). No Parquet file ->
// NOT_FOUND naming `field`.
absl::StatusOr<HubDatasetLayout> ResolveParquetConversionLayout(const std::vector<std::string>& paths,
                                                               const nlohmann::json& card_data,
                                                               std::string_view field);

// Glob matching as the datasets library resolves data_files patterns (fsspec >= 2023.12, like Python's glob):
// '*' and '?' do not cross '/', "**" as a whole path component matches any number of components (none too),
// [abc], [a-z] and [!abc] match one character.
bool HubGlobMatch(std::string_view pattern, std::string_view path);

}  // namespace tuneforge

#endif  // TUNEFORGE_COMMON_HUB_DATASET_LAYOUT_H_
