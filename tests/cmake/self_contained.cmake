# Tests that use "a valid Hugging Face model directory / adapter" read the eager reference cases generated at test
# time (tests/support/testdata.h, GeneratedReference()), so a clone without ../shared/testdata runs them too: ctest
# runs the generator (the hf_reference_eager fixture) before them. Their parts that need the fixed shared set
# report themselves skipped when it is not beside the clone.
foreach(test hf_hub_client_test local_model_test lineage_test model_config_test peft_adapter_test safetensors_file_test
             safetensors_header_test adapters_test admin_test configs_test jobs_test models_test fine_tune_test
             model_parity_test packing_test safetensors_fuzz_asan_test merge_adapter_test exports_test
             evaluations_test)
  if(TEST ${test})
    set_property(TEST ${test} APPEND PROPERTY FIXTURES_REQUIRED hf_reference_eager)
  endif()
endforeach()
