# tokenizer_upstream_test against the real upstream: tests/reference/make_tokenizer_reference.py trains
# tokenizer.json files with `tokenizers` and renders chat templates with transformers now, into
# tokenizer_reference/; the C++ test compares ids, decodes and renders with them (and skips, saying so, without
# that directory). Seeds vary per run and are printed by both tests; `make_tokenizer_reference.py --seed N`
# replays one.
set(TOKENIZER_REFERENCE_DIR ${CMAKE_CURRENT_BINARY_DIR}/tokenizer_reference)

add_test(NAME tokenizer_upstream_reference
         COMMAND ${RUN_OR_SKIP} --needs-python "${TUNEFORGE_TEST_PYTHON}" "tokenizers transformers" --
                 ${TUNEFORGE_TEST_PYTHON} ${CMAKE_CURRENT_SOURCE_DIR}/reference/make_tokenizer_reference.py
                 --out ${TOKENIZER_REFERENCE_DIR})
set_tests_properties(tokenizer_upstream_reference PROPERTIES FIXTURES_SETUP tokenizer_upstream_reference
                     SKIP_RETURN_CODE 77 TIMEOUT 300)

# tokenizer_upstream_test itself is added by tests/CMakeLists.txt (tests/trainer/tokenizer_*_test.cc link the
# tokenizer library); here it gets the fixture and the directory. Without the directory its upstream tests
# report themselves skipped (gtest) while its fixed cases still run, so a failure there is never hidden.
if(TEST tokenizer_upstream_test)
  set_tests_properties(tokenizer_upstream_test PROPERTIES
                       FIXTURES_REQUIRED tokenizer_upstream_reference
                       ENVIRONMENT "TUNEFORGE_TOKENIZER_REFERENCE=${TOKENIZER_REFERENCE_DIR}")
endif()
