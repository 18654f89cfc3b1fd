# Small dataset repos and what the datasets library decides about each (tests/reference/make_hub_layouts.py): their
# configs, splits, data files and builder, for the reference cases of hub_dataset_layout_test. Offline, with caches
# inside the output folder. Skipped (77) without a Python that has datasets; the test then skips those cases and
# says why.
add_test(NAME hub_layouts
         COMMAND ${RUN_OR_SKIP} --needs-python "${TUNEFORGE_TEST_PYTHON}" "datasets" --
                 ${TUNEFORGE_TEST_PYTHON} ${CMAKE_CURRENT_SOURCE_DIR}/reference/make_hub_layouts.py
                 --out ${TUNEFORGE_HUB_LAYOUTS_DIR})
set_tests_properties(hub_layouts PROPERTIES FIXTURES_SETUP hub_layouts SKIP_RETURN_CODE 77 TIMEOUT 300)
if(TARGET hub_dataset_layout_test)
  set_property(TEST hub_dataset_layout_test APPEND PROPERTY FIXTURES_REQUIRED hub_layouts)
endif()
