# Generation with a KV cache (tests/trainer/generation_test.cc) against transformers' generate(): the reference
# outputs are made at test time by tests/reference/make_generation_reference.py from the cases hf_reference_eager
# writes, so generation_test needs both fixtures. The prompt seed varies per run and is printed by
# hf_generation_reference; `make_generation_reference.py --seed N` replays it. Skipped (77) without a Python that has
# torch, transformers and peft; generation_test then skips its transformers comparisons and says why.
if(TARGET generation_test)
  set(TUNEFORGE_GENERATION_REFERENCE_DIR ${CMAKE_CURRENT_BINARY_DIR}/hf_reference/generation)
  add_test(NAME hf_generation_reference
           COMMAND ${RUN_OR_SKIP} --needs-python "${TUNEFORGE_TEST_PYTHON}" "torch transformers peft" --
                   ${TUNEFORGE_TEST_PYTHON} ${CMAKE_CURRENT_SOURCE_DIR}/reference/make_generation_reference.py
                   --reference ${TUNEFORGE_GENERATED_REFERENCE_DIR} --out ${TUNEFORGE_GENERATION_REFERENCE_DIR})
  set_tests_properties(hf_generation_reference PROPERTIES FIXTURES_SETUP hf_generation_reference
                       FIXTURES_REQUIRED hf_reference_eager SKIP_RETURN_CODE 77 TIMEOUT 600)
  set_tests_properties(generation_test PROPERTIES FIXTURES_REQUIRED "hf_reference_eager;hf_generation_reference")
  # TUNEFORGE_GENERATION_REFERENCE in the environment overrides it, as TUNEFORGE_GENERATED_REFERENCE does.
  target_compile_definitions(generation_test PRIVATE
    TUNEFORGE_GENERATION_REFERENCE="${TUNEFORGE_GENERATION_REFERENCE_DIR}")
endif()
