# CMake toolchain file for bare-metal Cortex-M with the GNU Arm toolchain (arm-none-eabi-gcc, newlib).
#   cmake -S csrc -B build/arm -DCMAKE_TOOLCHAIN_FILE=cmake/arm-none-eabi.cmake -DEDGETRAIN_CPU=cortex-m4
# EDGETRAIN_CPU: any -mcpu value (cortex-m0plus, cortex-m4, cortex-m33, ...). Soft-float ABI: the core is
# integer only. Executables link against newlib-nano with the nosys stubs; a firmware adds its own
# startup code and linker script (csrc/port/cortex-m, docs/firmware.md).
set(CMAKE_SYSTEM_NAME Generic)
set(CMAKE_SYSTEM_PROCESSOR arm)
set(CMAKE_C_COMPILER arm-none-eabi-gcc)
set(CMAKE_AR arm-none-eabi-ar)
set(CMAKE_RANLIB arm-none-eabi-ranlib)
set(CMAKE_TRY_COMPILE_TARGET_TYPE STATIC_LIBRARY)

set(EDGETRAIN_CPU "cortex-m4" CACHE STRING "Cortex-M to build for (-mcpu)")
set(CMAKE_C_FLAGS_INIT "-mcpu=${EDGETRAIN_CPU} -mthumb -mfloat-abi=soft -ffunction-sections -fdata-sections")
set(CMAKE_EXE_LINKER_FLAGS_INIT "-specs=nano.specs -specs=nosys.specs -Wl,--gc-sections")

set(CMAKE_FIND_ROOT_PATH_MODE_PROGRAM NEVER)
set(CMAKE_FIND_ROOT_PATH_MODE_LIBRARY ONLY)
set(CMAKE_FIND_ROOT_PATH_MODE_INCLUDE ONLY)
