// Training a linear head on a model's features (a linear probe) and writing
// the result as a classifier checkpoint that vit and transformers load:
//
//   image_dataset d = read_image_folder("photos");            // photos/<class>/<image>
//   image_features f = compute_features(model, paths_of(d), 16, ws);
//   head_fit fit = train_head(f.rows.cast<double>(), labels, classes, {});
//   save_classifier(model_dir, d.classes, fit.head, "out");
//
// The features are what the family's transformers classifier reads (ViT: the
// CLS token after the final LayerNorm; DINOv2: that CLS ++ the mean of the
// patch tokens); the head minimises mean cross-entropy + (l2 / 2) * ||W||^2
// in double with L-BFGS, to a gradient norm of 1e-6.
#pragma once

#include "detail/train/checkpoint.hpp"
#include "detail/train/dataset.hpp"
#include "detail/train/evaluate.hpp"
#include "detail/train/features.hpp"
#include "detail/train/logistic.hpp"
