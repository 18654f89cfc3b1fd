# Finds libtorch (PyTorch >= 2.5) and defines the imported target tuneforge::torch.
#
# Where it looks, first match wins:
#   1. TUNEFORGE_TORCH (CMake cache variable, else environment variable): a Python that can `import torch`
#      (e.g. venv/bin/python), a virtual environment folder, or a torch / libtorch folder (the one holding
#      include/ and lib/, e.g. site-packages/torch or an unzipped libtorch).
#   2. CMAKE_PREFIX_PATH entries holding Torch/TorchConfig.cmake or share/cmake/Torch/TorchConfig.cmake
#      (e.g. -DCMAKE_PREFIX_PATH=$(python -c 'import torch; print(torch.utils.cmake_prefix_path)')).
#   3. python3 on the PATH, if it can import torch.
#
# torch's own CMake package is not used: for a CUDA build (every Linux torch on PyPI) it stops with an error on a
# machine without the CUDA toolkit, although nothing here compiles CUDA code. Linking the libraries directly works
# on both: the same binaries run on the CPU, and on CUDA where a GPU is visible. libtorch_cuda is linked with
# --no-as-needed because nothing references it by symbol; without it torch::cuda::is_available() is false.
#
# Sets TUNEFORGE_TORCH_VERSION, TUNEFORGE_TORCH_ROOT, TUNEFORGE_TORCH_HAS_CUDA and TUNEFORGE_TORCH_PYTHON (the Python
# that torch came from, if any).

set(TUNEFORGE_TORCH "$ENV{TUNEFORGE_TORCH}" CACHE STRING
    "A Python with torch, a virtual environment, or a torch/libtorch folder to build against")

# Asks `python` where torch lives and which C++ ABI it was built with.
function(_tuneforge_torch_from_python python out_root out_abi)
  execute_process(
    COMMAND "${python}" -c "import os, torch; print(os.path.dirname(torch.__file__)); print(int(torch._C._GLIBCXX_USE_CXX11_ABI))"
    OUTPUT_VARIABLE out ERROR_VARIABLE err RESULT_VARIABLE rc OUTPUT_STRIP_TRAILING_WHITESPACE)
  if(NOT rc EQUAL 0)
    set(${out_root} "" PARENT_SCOPE)
    set(_tuneforge_torch_python_error "${err}" PARENT_SCOPE)
    return()
  endif()
  string(REPLACE "\n" ";" lines "${out}")
  list(GET lines 0 root)
  list(GET lines 1 abi)
  set(${out_root} "${root}" PARENT_SCOPE)
  set(${out_abi} "${abi}" PARENT_SCOPE)
endfunction()

set(_torch_root "")
set(_torch_abi "")
set(_torch_from "")
set(_torch_python "")
if(TUNEFORGE_TORCH)
  set(_spec "${TUNEFORGE_TORCH}")
  if(IS_DIRECTORY "${_spec}" AND EXISTS "${_spec}/bin/python")
    set(_spec "${_spec}/bin/python")  # a virtual environment
  endif()
  if(IS_DIRECTORY "${_spec}")
    set(_torch_root "${_spec}")
  else()
    _tuneforge_torch_from_python("${_spec}" _torch_root _torch_abi)
    set(_torch_python "${_spec}")
    if(NOT _torch_root)
      message(FATAL_ERROR "TUNEFORGE_TORCH=${TUNEFORGE_TORCH} cannot import torch:\n${_tuneforge_torch_python_error}\n"
                          "Point it at a Python with torch >= 2.5 installed, a virtual environment, or a libtorch folder "
                          "(or run bash scripts/python-env.sh, which makes one).")
    endif()
  endif()
  set(_torch_from "TUNEFORGE_TORCH=${TUNEFORGE_TORCH}")
else()
  foreach(prefix IN LISTS CMAKE_PREFIX_PATH)
    if(EXISTS "${prefix}/Torch/TorchConfig.cmake")
      get_filename_component(_torch_root "${prefix}/../.." ABSOLUTE)
    elseif(EXISTS "${prefix}/share/cmake/Torch/TorchConfig.cmake")
      get_filename_component(_torch_root "${prefix}" ABSOLUTE)
    endif()
    if(_torch_root)
      set(_torch_from "CMAKE_PREFIX_PATH entry ${prefix}")
      break()
    endif()
  endforeach()
  if(NOT _torch_root)
    find_program(_tuneforge_python3 python3)
    if(_tuneforge_python3)
      _tuneforge_torch_from_python("${_tuneforge_python3}" _torch_root _torch_abi)
      set(_torch_from "${_tuneforge_python3}")
      set(_torch_python "${_tuneforge_python3}")
    endif()
  endif()
endif()

if(NOT _torch_root OR NOT EXISTS "${_torch_root}/include/torch" OR NOT EXISTS "${_torch_root}/lib")
  message(FATAL_ERROR
    "libtorch not found. tuneforge builds against PyTorch >= 2.5. Either run scripts/build.sh (it "
    "makes the pinned environment with bash scripts/python-env.sh), or name your own torch: "
    "-DTUNEFORGE_TORCH=/path/to/python (a Python with torch), -DTUNEFORGE_TORCH=/path/to/libtorch, or "
    "-DCMAKE_PREFIX_PATH=$(python -c 'import torch; print(torch.utils.cmake_prefix_path)').")
endif()

# Version: torch/version.py (Python packages) or build-version (libtorch zips).
set(_torch_version "")
if(EXISTS "${_torch_root}/version.py")
  file(STRINGS "${_torch_root}/version.py" _line REGEX "^__version__ *=")
  string(REGEX MATCH "[0-9]+\\.[0-9]+\\.[0-9]+[^'\"]*" _torch_version "${_line}")
elseif(EXISTS "${_torch_root}/build-version")
  file(STRINGS "${_torch_root}/build-version" _torch_version LIMIT_COUNT 1)
endif()
string(REGEX MATCH "^[0-9]+\\.[0-9]+" _torch_major_minor "${_torch_version}")
if(NOT _torch_major_minor)
  message(WARNING "Cannot tell the version of the torch in ${_torch_root}; PyTorch >= 2.5 is required.")
elseif(_torch_major_minor VERSION_LESS 2.5)
  message(FATAL_ERROR "torch ${_torch_version} in ${_torch_root} is too old: tuneforge needs PyTorch >= 2.5 "
                      "(scaled_dot_product_attention with enable_gqa, the 2.x optimizer API).")
endif()

# C++ ABI: as the Python says; for a bare libtorch, what its CMake package passes (new builds: always 1).
if(_torch_abi STREQUAL "")
  set(_torch_abi 1)
  file(GLOB _torch_cmake_files "${_torch_root}/share/cmake/Torch/*.cmake")
  foreach(f IN LISTS _torch_cmake_files)
    file(STRINGS "${f}" _abi_line REGEX "_GLIBCXX_USE_CXX11_ABI=0")
    if(_abi_line)
      set(_torch_abi 0)
    endif()
  endforeach()
endif()

if(NOT _torch_abi EQUAL 1)
  message(FATAL_ERROR "torch in ${_torch_root} was built with the pre-C++11 string ABI (_GLIBCXX_USE_CXX11_ABI=0), "
                      "which cannot share a process with the system's abseil and gRPC. Use a torch built with the "
                      "C++11 ABI: PyPI's torch >= 2.7, or the cxx11-abi libtorch download.")
endif()

set(_torch_lib "${_torch_root}/lib")
foreach(lib torch torch_cpu c10)
  if(NOT EXISTS "${_torch_lib}/lib${lib}.so")
    message(FATAL_ERROR "${_torch_lib}/lib${lib}.so is missing; is ${_torch_root} a complete torch install?")
  endif()
endforeach()
# libstdc++ first: PyPI's libtorch.so exports its own unversioned copies of std::filesystem (from the static
# libstdc++ parts of its build toolchain), which crash when called from outside torch. Whichever library comes first
# in a binary's NEEDED list answers the binary's calls, so the system's libstdc++ must come before libtorch (in a
# Python process it is loaded before torch, which is why Python never sees this).
set(_torch_link "-Wl,--push-state,--no-as-needed" stdc++ "-Wl,--pop-state"
    "${_torch_lib}/libtorch.so" "${_torch_lib}/libtorch_cpu.so" "${_torch_lib}/libc10.so")
set(TUNEFORGE_TORCH_HAS_CUDA OFF)
if(EXISTS "${_torch_lib}/libtorch_cuda.so" AND EXISTS "${_torch_lib}/libc10_cuda.so")
  set(TUNEFORGE_TORCH_HAS_CUDA ON)
  list(APPEND _torch_link "-Wl,--no-as-needed" "${_torch_lib}/libtorch_cuda.so" "${_torch_lib}/libc10_cuda.so"
       "-Wl,--as-needed")
endif()

add_library(tuneforge_torch INTERFACE)
add_library(tuneforge::torch ALIAS tuneforge_torch)
# -idirafter: searched after the system's include directories. torch/include also carries copies of third-party
# headers (google/protobuf, fmt, ...) of other versions than the system's, which the gRPC and spdlog code beside it
# must not see; torch's own headers (ATen, c10, torch) exist only there. Like -isystem, no warnings from them.
target_compile_options(tuneforge_torch INTERFACE
  "SHELL:-idirafter ${_torch_root}/include" "SHELL:-idirafter ${_torch_root}/include/torch/csrc/api/include")
target_compile_definitions(tuneforge_torch INTERFACE _GLIBCXX_USE_CXX11_ABI=${_torch_abi})
target_link_libraries(tuneforge_torch INTERFACE ${_torch_link} Threads::Threads ${CMAKE_DL_LIBS})
# Binaries find libtorch through the RUNPATH CMake gives every full-path library (also when installed, see
# CMAKE_INSTALL_RPATH_USE_LINK_PATH), and the CUDA libraries beside torch through libtorch's own RUNPATH.

# The device-generic allocator statistics (peak memory without CUDA headers) came with torch 2.9's c10 API.
file(STRINGS "${_torch_root}/include/c10/core/CachingDeviceAllocator.h" _device_stats REGEX "getDeviceStats")
if(_device_stats)
  target_compile_definitions(tuneforge_torch INTERFACE TUNEFORGE_TORCH_DEVICE_STATS=1)
endif()

set(TUNEFORGE_TORCH_VERSION "${_torch_version}")
set(TUNEFORGE_TORCH_ROOT "${_torch_root}")
set(TUNEFORGE_TORCH_PYTHON "${_torch_python}")  # empty when torch came from a folder
message(STATUS "libtorch ${_torch_version} from ${_torch_root} (${_torch_from}; CUDA build: ${TUNEFORGE_TORCH_HAS_CUDA}, "
               "_GLIBCXX_USE_CXX11_ABI=${_torch_abi})")
