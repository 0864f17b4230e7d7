// What load and forward are asked to do.
#pragma once

namespace vit {

// How the Linear layers compute: float32, bfloat16 weights (fp32
// accumulation), or int8 weights with per-row quantized activations.
enum class precision { f32, bf16, int8 };

struct profile;

struct load_options {
    precision compute = precision::f32;  // the encoder's Linear layers; an int8 checkpoint is int8 anyway
    int threads = 0;                      // for packing the weights; 0: every core
    // float32 on an AVX-512 CPU, from a file holding float32: return as soon
    // as the weights are mapped and checked, and build the faster packed
    // layout on `threads` background threads. Until a layer is packed it runs
    // from the mapped file, with the same results bit for bit (at about 0.9x
    // the speed). basic_model::wait_packed() waits for the end. Off: pack
    // everything before load returns.
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
