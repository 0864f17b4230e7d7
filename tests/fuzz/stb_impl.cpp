// stb_image compiled into the fuzz targets, so that it is instrumented
// (coverage and ASan) like the code that calls it; Debian's libstb.so is not.
// Built without -Wall: this is third-party code.
#define STB_IMAGE_IMPLEMENTATION
#include <stb_image.h>
