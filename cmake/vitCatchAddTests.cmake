# Run by ctest through the include file vit_catch_discover_tests() writes:
# adds one test per Catch2 case of VIT_CATCH_EXECUTABLE, labelled with its
# tags. The generated add_test() calls are kept in VIT_CATCH_TESTS_FILE and
# made again only when the executable (or this setup) is newer.

# Test names may hold characters that CMake lists treat specially
# ('[', ']', ';', '\'): carry them as control characters until written out.
string(ASCII 1 _vit_lb)
string(ASCII 2 _vit_rb)
string(ASCII 3 _vit_sc)
string(ASCII 4 _vit_bs)

function(_vit_decode out value)
  string(REPLACE "${_vit_lb}" "[" value "${value}")
  string(REPLACE "${_vit_rb}" "]" value "${value}")
  string(REPLACE "${_vit_sc}" ";" value "${value}")
  string(REPLACE "${_vit_bs}" "\\" value "${value}")
  set(${out} "${value}" PARENT_SCOPE)
endfunction()

# `out` = the decoded `value` as one bracket argument, whatever it contains.
function(_vit_bracket out value)
  _vit_decode(value "${value}")
  set(eq "=")
  while(value MATCHES "]${eq}]")
    string(APPEND eq "=")
  endwhile()
  set(${out} "[${eq}[${value}]${eq}]" PARENT_SCOPE)
endfunction()

# `out` = the lines the executable prints when run with ARGN, encoded.
function(_vit_catch_lines out)
  execute_process(COMMAND ${VIT_CATCH_EMULATOR} "${VIT_CATCH_EXECUTABLE}" ${ARGN}
    WORKING_DIRECTORY "${VIT_CATCH_WORKING_DIR}"
    OUTPUT_VARIABLE output ERROR_VARIABLE error RESULT_VARIABLE result)
  # Catch2 2.13's listings exit with the number of cases listed.
  if(NOT result MATCHES "^[0-9]+$")
    message(FATAL_ERROR "${VIT_CATCH_EXECUTABLE} ${ARGN}: ${result}\n${output}${error}")
  endif()
  string(REPLACE "\\" "${_vit_bs}" output "${output}")
  string(REPLACE "[" "${_vit_lb}" output "${output}")
  string(REPLACE "]" "${_vit_rb}" output "${output}")
  string(REPLACE ";" "${_vit_sc}" output "${output}")
  string(REPLACE "\n" ";" output "${output}")
  set(lines "")
  foreach(line IN LISTS output)
    string(REGEX REPLACE "\r$" "" line "${line}")
    # --list-test-names-only quotes names that start with '#'.
    if(line MATCHES "^\"(#.*)\"$")
      set(line "${CMAKE_MATCH_1}")
    endif()
    if(NOT line STREQUAL "")
      list(APPEND lines "${line}")
    endif()
  endforeach()
  set(${out} "${lines}" PARENT_SCOPE)
endfunction()

# A Catch2 test spec that matches `value` as a literal name or tag: '\' and
# ',' escaped everywhere, '"' too since names are passed quoted (a quoted name
# may also start with '[', '~' or '-', and keeps leading spaces).
function(_vit_catch_escape out value)
  _vit_decode(value "${value}")
  string(REPLACE "\\" "\\\\" value "${value}")
  string(REPLACE "," "\\," value "${value}")
  string(REPLACE "\"" "\\\"" value "${value}")
  set(${out} "${value}" PARENT_SCOPE)
endfunction()

function(_vit_catch_generate)
  _vit_catch_lines(names --list-test-names-only)
  list(LENGTH names count)
  if(count EQUAL 0)
    message(FATAL_ERROR "${VIT_CATCH_EXECUTABLE} lists no test cases")
  endif()

  # Labels: each tag's members, listed by the tag itself.
  _vit_catch_lines(tag_lines --list-tags)
  foreach(line IN LISTS tag_lines)
    # "  12  [hostile]", the tag's spellings one after the other.
    if(NOT line MATCHES "^ *[0-9]+  ${_vit_lb}([^${_vit_rb}]+)${_vit_rb}")
      continue()
    endif()
    set(tag "${CMAKE_MATCH_1}")
    _vit_catch_escape(spec "${tag}")
    _vit_decode(label "${tag}")
    _vit_catch_lines(members "[${spec}]" --list-test-names-only)
    foreach(name IN LISTS members)
      list(FIND names "${name}" i)
      if(i GREATER_EQUAL 0)
        list(APPEND labels_${i} "${label}")
      endif()
    endforeach()
  endforeach()

  set(emulator "")
  foreach(arg IN LISTS VIT_CATCH_EMULATOR)
    _vit_bracket(arg "${arg}")
    string(APPEND emulator " ${arg}")
  endforeach()
  set(extra "")
  foreach(arg IN LISTS VIT_CATCH_EXTRA_ARGS)
    _vit_bracket(arg "${arg}")
    string(APPEND extra " ${arg}")
  endforeach()
  _vit_bracket(exe "${VIT_CATCH_EXECUTABLE}")
  _vit_bracket(workdir "${VIT_CATCH_WORKING_DIR}")

  set(script "")
  math(EXPR last "${count} - 1")
  foreach(i RANGE ${last})
    list(GET names ${i} name)
    _vit_bracket(test "${name}")
    _vit_catch_escape(spec "${name}")
    _vit_bracket(spec "\"${spec}\"")
    # --warn NoTests: a spec that matches no case fails instead of passing.
    string(APPEND script "add_test(${test}${emulator} ${exe} ${spec} --warn NoTests${extra})\n")
    string(APPEND script "set_tests_properties(${test} PROPERTIES WORKING_DIRECTORY ${workdir}")
    if(DEFINED labels_${i})
      _vit_bracket(labels "${labels_${i}}")
      string(APPEND script " LABELS ${labels}")
    endif()
    string(APPEND script ")\n")
  endforeach()

  # Written aside and renamed, so that a ctest running alongside never reads half a file.
  string(RANDOM LENGTH 8 suffix)
  file(WRITE "${VIT_CATCH_TESTS_FILE}.${suffix}" "${script}")
  file(RENAME "${VIT_CATCH_TESTS_FILE}.${suffix}" "${VIT_CATCH_TESTS_FILE}")
endfunction()

if(NOT EXISTS "${VIT_CATCH_EXECUTABLE}")
  # Fails with "Could not find executable" until the target is built.
  add_test(${VIT_CATCH_TARGET}_NOT_BUILT ${VIT_CATCH_TARGET}_NOT_BUILT)
else()
  if(NOT EXISTS "${VIT_CATCH_TESTS_FILE}"
     OR "${VIT_CATCH_EXECUTABLE}" IS_NEWER_THAN "${VIT_CATCH_TESTS_FILE}"
     OR "${CMAKE_CURRENT_LIST_FILE}" IS_NEWER_THAN "${VIT_CATCH_TESTS_FILE}"
     OR "${VIT_CATCH_INCLUDE_FILE}" IS_NEWER_THAN "${VIT_CATCH_TESTS_FILE}")
    _vit_catch_generate()
  endif()
  include("${VIT_CATCH_TESTS_FILE}")
endif()
