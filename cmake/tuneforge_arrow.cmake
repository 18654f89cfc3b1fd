# Finds Apache Arrow's C++ libraries (libarrow, libparquet) and headers for reading Parquet datasets, and defines the
# imported target tuneforge::parquet. Debian 12 packages no Arrow; PyPI's pyarrow wheel carries both, built with the
# same C++ ABI as our compiler, so the Python environment that provides torch provides Arrow too.
#
# Where it looks, first match wins:
#   1. TUNEFORGE_ARROW (CMake cache variable, else environment variable): a Python that can `import pyarrow`, a
#      virtual environment folder, or a pyarrow folder (the one holding include/arrow and libarrow.so.*).
#   2. The Python torch came from (TUNEFORGE_TORCH_PYTHON, see tuneforge_torch.cmake), then python3 on the PATH.
#
# Arrow's headers need C++20: only the translation units that include them (common/parquet_file.cc) are compiled
# as C++20; everything else stays C++17. Without Arrow, TUNEFORGE_HAVE_PARQUET is OFF and Parquet files are refused
# with a message saying how to build with it.

set(TUNEFORGE_ARROW "$ENV{TUNEFORGE_ARROW}" CACHE STRING
    "A Python with pyarrow, a virtual environment, or a pyarrow folder, for Parquet support")

function(_tuneforge_pyarrow_dir python out_dir)
  execute_process(
    COMMAND "${python}" -c "import os, pyarrow; print(os.path.dirname(pyarrow.__file__)); print(pyarrow.__version__)"
    OUTPUT_VARIABLE out ERROR_QUIET RESULT_VARIABLE rc OUTPUT_STRIP_TRAILING_WHITESPACE)
  if(rc EQUAL 0)
    string(REPLACE "\n" ";" lines "${out}")
    list(GET lines 0 dir)
    set(${out_dir} "${dir}" PARENT_SCOPE)
  else()
    set(${out_dir} "" PARENT_SCOPE)
  endif()
endfunction()

set(_arrow_dir "")
set(_arrow_candidates "")
if(TUNEFORGE_ARROW)
  list(APPEND _arrow_candidates "${TUNEFORGE_ARROW}")
else()
  if(TUNEFORGE_TORCH_PYTHON)
    list(APPEND _arrow_candidates "${TUNEFORGE_TORCH_PYTHON}")
  endif()
  find_program(_tuneforge_arrow_python3 python3)
  if(_tuneforge_arrow_python3)
    list(APPEND _arrow_candidates "${_tuneforge_arrow_python3}")
  endif()
endif()
foreach(candidate IN LISTS _arrow_candidates)
  if(IS_DIRECTORY "${candidate}" AND EXISTS "${candidate}/include/arrow/api.h")
    set(_arrow_dir "${candidate}")
  elseif(IS_DIRECTORY "${candidate}" AND EXISTS "${candidate}/bin/python")
    _tuneforge_pyarrow_dir("${candidate}/bin/python" _arrow_dir)
  elseif(NOT IS_DIRECTORY "${candidate}")
    _tuneforge_pyarrow_dir("${candidate}" _arrow_dir)
  endif()
  if(_arrow_dir)
    break()
  endif()
endforeach()

set(TUNEFORGE_HAVE_PARQUET OFF)
if(_arrow_dir)
  # The wheel ships each library under its soname only (libarrow.so.2600); take the shortest name of each.
  foreach(lib arrow parquet)
    file(GLOB _found "${_arrow_dir}/lib${lib}.so.[0-9]*")
    list(SORT _found COMPARE NATURAL)
    list(LENGTH _found _n)
    if(_n GREATER 0)
      list(GET _found 0 _tuneforge_lib_${lib})
    endif()
  endforeach()
  if(_tuneforge_lib_arrow AND _tuneforge_lib_parquet AND EXISTS "${_arrow_dir}/include/parquet/arrow/reader.h")
    set(TUNEFORGE_HAVE_PARQUET ON)
    add_library(tuneforge::parquet INTERFACE IMPORTED)
    set_target_properties(tuneforge::parquet PROPERTIES
      INTERFACE_INCLUDE_DIRECTORIES "${_arrow_dir}/include"
      INTERFACE_LINK_LIBRARIES "${_tuneforge_lib_parquet};${_tuneforge_lib_arrow}")
    message(STATUS "Parquet: Arrow from ${_arrow_dir}")
  endif()
endif()
if(NOT TUNEFORGE_HAVE_PARQUET)
  message(STATUS "Parquet: off (no pyarrow found: pip install pyarrow in the Python given by TUNEFORGE_ARROW or "
                 "TUNEFORGE_TORCH, as scripts/python-env.sh does); Parquet datasets will be refused")
endif()
