# Parquet files written by pyarrow at test time (tests/reference/make_parquet_files.py) for parquet_file_test and the
# Parquet cases of datasets_test: every type, nulls, nested chat rows, row groups and compressions, and damaged
# files. The seed varies per run and is printed; `make_parquet_files.py --seed N` replays it. Skipped (77) without
# a Python that has pyarrow; the tests then skip their Parquet cases and say why.
add_test(NAME parquet_files
         COMMAND ${RUN_OR_SKIP} --needs-python "${TUNEFORGE_TEST_PYTHON}" "pyarrow" --
                 ${TUNEFORGE_TEST_PYTHON} ${CMAKE_CURRENT_SOURCE_DIR}/reference/make_parquet_files.py
                 --out ${TUNEFORGE_PARQUET_REFERENCE_DIR})
set_tests_properties(parquet_files PROPERTIES FIXTURES_SETUP parquet_files SKIP_RETURN_CODE 77 TIMEOUT 300)
foreach(test parquet_file_test datasets_test worker_hub_test)
  if(TARGET ${test})
    set_property(TEST ${test} APPEND PROPERTY FIXTURES_REQUIRED parquet_files)
  endif()
endforeach()
