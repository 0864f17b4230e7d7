// What load and forward are asked to do.
#pragma once

namespace vit {

// How the Linear layers compute: float32, bfloat16 weights (fp32
// accumulation), or int8 weights with per-row quantized activations.
enum class precision { f32, bf16, int8 };

struct profile;

struct load_options {
    precision compute = precision::f32;  // the encoder's Linear layers; an int8 checkpoint is int8 anyway
    int threads = 0;                      // for the model's own calls and wait_packed(); 0: every core
    // float32 on an AVX-512 CPU, from a file holding float32: return as soon
    // as the weights are mapped and checked; each of the following calls
    // packs about 1/24 of the weights on its own threads before it runs, and
    // runs the layers not yet packed straight from the mapped file, with the
    // same results bit for bit (about 0.93x the speed; BENCHMARKS.md).
    // basic_model::wait_packed() packs the rest at once. Off: pack everything
    // before load returns. (The name is older than the schedule: packing no
    // longer runs on threads of its own, competing with the calls.)
    bool background_packing = true;
};

struct forward_options {
    // false: output::last_hidden_state stays empty, and unless hidden states or
    // attentions are asked for, the last layer's attention (queries; keys and
    // values still come from every token), attention output and MLP run for
    // the CLS tokens only, as logits, cls_embedding and pooler_output need
    // (with the fast kernels these outputs are bit for bit the same, with the
    // portable ones within rounding).
    bool output_last_hidden_state = true;
    bool output_hidden_states = false;  // fill output::hidden_states
    bool output_attentions = false;     // fill output::attentions
    vit::profile* profile = nullptr;    // add per-stage timings here
};

}  // namespace vit
