// Every family's head (models/<family>/head.hpp), for the model driver: the
// registry's families name them (F::head<T>); config.hpp, which reads the
// registry, stays free of kernels.
#pragma once

#include "clip/head.hpp"
#include "deit/head.hpp"
#include "dinov2/head.hpp"
#include "registry.hpp"
#include "siglip/head.hpp"
#include "vit/head.hpp"
