# deploy/k8s: every manifest validated against the Kubernetes JSON schemas (kubernetes-validate, strict: unknown
# fields fail), checked for cluster sense (selectors, ports, claims, quantities, the restricted Pod Security profile,
# probes, the worker token from its Secret) and against deploy/compose.yaml, and, when built, against the services'
# own --help. k8s_manifests_self_test breaks the manifests in memory and passes only when every break is reported.
set(K8S_CHECK_ARGS --root ${PROJECT_SOURCE_DIR})
if(TARGET tuneforge-metadata)
  list(APPEND K8S_CHECK_ARGS --metadata-bin $<TARGET_FILE:tuneforge-metadata>)
endif()
if(TARGET tuneforge-trainer)
  list(APPEND K8S_CHECK_ARGS --trainer-bin $<TARGET_FILE:tuneforge-trainer>)
endif()
add_test(NAME k8s_manifests COMMAND bash ${CMAKE_CURRENT_SOURCE_DIR}/k8s/run.sh ${K8S_CHECK_ARGS})
add_test(NAME k8s_manifests_self_test COMMAND bash ${CMAKE_CURRENT_SOURCE_DIR}/k8s/run.sh ${K8S_CHECK_ARGS} --self-test)
set_tests_properties(k8s_manifests k8s_manifests_self_test PROPERTIES TIMEOUT 120 LABELS k8s)
