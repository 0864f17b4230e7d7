// stb_image and stb_image_write's implementation, for machines without
// Debian's compiled libstb (or with VIT_USE_SYSTEM_STB=OFF). vit::vit adds this
// file to each program that links it, so a program gets exactly one copy.
// Its include directory is a SYSTEM one: stb's code compiles without our warnings.
#define STB_IMAGE_IMPLEMENTATION
#define STB_IMAGE_WRITE_IMPLEMENTATION
#include <stb_image.h>
#include <stb_image_write.h>
