// `vitslim pipeline`: the method end to end on one dataset (default: Debian's Fashion-MNIST and
// the vit_fmnist preset), as the paper runs it:
//   1. pretrain the ViT from scratch (or take --pretrained weights);
//   2. entropy of every attention and MLP branch;
//   3. NOSE search for every --ratios value;
//   4. dilution fine-tuning per ratio, plus the unpruned model fine-tuned for the same budget and,
//      at the largest ratio, a random and a first-k choice (the paper's ablation);
//   5. merge each diluted run into its compact model;
//   6. evaluation of every model on the test split and a benchmark of each compact model against
//      the full one;
//   7. report.md + report.json in --out-dir (scripts/plot_pipeline.py adds the figures).
// Every stage writes into its own place under --out-dir and is skipped when its result is there, so
// an interrupted pipeline resumes where it stopped (training stages resume from checkpoints).
#pragma once

#include "core/config.h"
#include "dist/mpi_session.h"

namespace vitslim::pipeline {

int run_pipeline_job(const Config& config, const dist::MpiSession& mpi);

}  // namespace vitslim::pipeline
