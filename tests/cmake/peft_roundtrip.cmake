# Adapters round-trip through real PEFT (tests/e2e/peft_roundtrip_test.sh): fine-tuning jobs on real trainers write
# adapters that PEFT must load tensor for tensor with the same logits, and adapters PEFT made, imported with
# `tuneforge adapters add`, must give PEFT's logits in tuneforge. The seed is printed; PEFT_ROUNDTRIP_SEED=N
# replays it. Skipped (77) without a Python that has torch, transformers and peft.
if(TARGET tuneforge-trainer AND TARGET tuneforge-metadata AND TARGET tuneforge AND TARGET tuneforge-parity)
  add_test(NAME peft_roundtrip
           COMMAND ${RUN_OR_SKIP} --needs-python "${TUNEFORGE_TEST_PYTHON}" "torch transformers peft" --
                   bash ${CMAKE_CURRENT_SOURCE_DIR}/e2e/peft_roundtrip_test.sh $<TARGET_FILE:tuneforge-metadata>
                   $<TARGET_FILE:tuneforge-trainer> $<TARGET_FILE:tuneforge> $<TARGET_FILE:tuneforge-parity>
                   "${TUNEFORGE_TEST_PYTHON}" ${PROJECT_SOURCE_DIR})
  set_tests_properties(peft_roundtrip PROPERTIES SKIP_RETURN_CODE 77 TIMEOUT 900)
endif()
