// SQL for evaluation results: one method per statement in sql/evaluation_result_*.sql.
#ifndef TUNEFORGE_SERVICES_METADATA_EVALUATION_REPOSITORY_H_
#define TUNEFORGE_SERVICES_METADATA_EVALUATION_REPOSITORY_H_

#include <map>
#include <string>
#include <vector>

#include "services/metadata/evaluation_records.h"
#include "services/metadata/store.h"

namespace tuneforge {

class EvaluationRepository {
 public:
  // Stores the result of candidate `position` (0 the base) of job `job_id`.
  void InsertResult(Tx& tx, const std::string& job_id, int position, const CandidateResultRecord& result);
  // The results of each of `job_ids` that has any, by position; without samples unless `with_samples`.
  std::map<std::string, std::vector<CandidateResultRecord>> Results(Tx& tx, const std::vector<std::string>& job_ids,
                                                                    bool with_samples);
};

}  // namespace tuneforge

#endif  // TUNEFORGE_SERVICES_METADATA_EVALUATION_REPOSITORY_H_
