// vit._vit: the Python face of the library (pybind11). The package
// (python/vit/__init__.py) turns PIL images and os.PathLike into what this
// module takes: str paths, encoded bytes, uint8 [H, W, 3] arrays.
//
// Outputs are numpy arrays over the library's own buffers (a capsule owns
// them), and every call that decodes or computes runs without the GIL.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <memory>
#include <mutex>
#include <string>
#include <utility>
#include <vector>

#include <vit/vit.hpp>

#include "common/hub.hpp"  // the hub-id resolver vit-classify uses

namespace py = pybind11;

namespace {

// A numpy array over `data`, which lives as long as `owner` (moved into the
// array's capsule): no copy.
template <class Owner>
py::array_t<float> adopt(std::shared_ptr<Owner> owner, const float* data, std::vector<py::ssize_t> shape) {
    auto* keep = new std::shared_ptr<Owner>(std::move(owner));
    py::capsule capsule(keep, [](void* p) { delete static_cast<std::shared_ptr<Owner>*>(p); });
    return py::array_t<float>(std::move(shape), data, capsule);
}

// One image as the caller gave it; decoded later without the GIL.
struct image_source {
    enum kind_t { path, encoded, pixels } kind = path;
    std::string name;                 // the path, or "<bytes #i>" / "<array #i>" for messages
    const unsigned char* data = nullptr;  // encoded bytes or RGB rows, owned by `ref`
    std::size_t size = 0;
    int width = 0, height = 0;
    py::object ref;  // keeps `data` alive; only touched with the GIL held
};

std::vector<image_source> sources(const py::list& images) {
    std::vector<image_source> out;
    out.reserve(images.size());
    for (std::size_t i = 0; i < images.size(); ++i) {
        py::handle h = images[i];
        image_source s;
        s.ref = py::reinterpret_borrow<py::object>(h);
        const std::string at = "image " + std::to_string(i);
        if (py::isinstance<py::str>(h)) {
            s.kind = image_source::path;
            s.name = h.cast<std::string>();
        } else if (py::isinstance<py::bytes>(h)) {
            s.kind = image_source::encoded;
            s.name = "<" + at + ": bytes>";
            char* p = nullptr;
            py::ssize_t n = 0;
            if (PyBytes_AsStringAndSize(h.ptr(), &p, &n) != 0) throw py::error_already_set();
            s.data = reinterpret_cast<const unsigned char*>(p);
            s.size = std::size_t(n);
        } else if (py::isinstance<py::array>(h)) {
            s.kind = image_source::pixels;
            s.name = "<" + at + ": array>";
            py::array a = py::reinterpret_borrow<py::array>(h);
            if (!py::isinstance<py::array_t<std::uint8_t>>(a) || a.ndim() != 3 || a.shape(2) != 3)
                throw vit::error(s.name + ": expected a uint8 array of shape [height, width, 3] (RGB), got " +
                                 py::str(a.dtype()).cast<std::string>() + " of shape " +
                                 py::str(py::tuple(py::cast(std::vector<py::ssize_t>(a.shape(), a.shape() + a.ndim()))))
                                     .cast<std::string>());
            py::array_t<std::uint8_t, py::array::c_style | py::array::forcecast> c(a);
            s.ref = c;
            s.height = int(c.shape(0));
            s.width = int(c.shape(1));
            s.data = c.data();
            s.size = std::size_t(c.size());
        } else {
            throw vit::error(at + ": expected a path, encoded bytes, a PIL image or a uint8 [H, W, 3] array, got " +
                             py::str(py::type::handle_of(h).attr("__name__")).cast<std::string>());
        }
        out.push_back(std::move(s));
    }
    if (out.empty()) throw vit::error("no images");
    return out;
}

// A list of str (texts or labels) as UTF-8 strings; `what` names them in errors.
std::vector<std::string> strings(const py::list& items, const char* what) {
    std::vector<std::string> out;
    out.reserve(items.size());
    for (std::size_t i = 0; i < items.size(); ++i) {
        py::handle h = items[i];
        if (!py::isinstance<py::str>(h))
            throw vit::error(std::string(what) + " " + std::to_string(i) + ": expected a str, got " +
                             py::str(py::type::handle_of(h).attr("__name__")).cast<std::string>());
        out.push_back(h.cast<std::string>());
    }
    if (out.empty()) throw vit::error(std::string("no ") + what + "s");
    return out;
}

// Each row over its L2 norm (in double), as vit-classify --normalize.
void l2_normalize_rows(vit::matrix<float>& m) {
    for (Eigen::Index r = 0; r < m.rows(); ++r) {
        double ss = 0;
        for (Eigen::Index j = 0; j < m.cols(); ++j) ss += double(m(r, j)) * double(m(r, j));
        if (ss > 0)
            for (Eigen::Index j = 0; j < m.cols(); ++j) m(r, j) = float(double(m(r, j)) / std::sqrt(ss));
    }
}

// Runs without the GIL.
vit::image decode(const image_source& s) {
    switch (s.kind) {
        case image_source::path: return vit::load_image(s.name);
        case image_source::encoded: return vit::decode_image(s.data, s.size, s.name);
        case image_source::pixels: break;
    }
    if (s.width <= 0 || s.height <= 0) throw vit::error(s.name + ": empty image");
    vit::image img;
    img.width = s.width;
    img.height = s.height;
    img.rgb.assign(s.data, s.data + s.size);
    return img;
}

std::string dtype_name(vit::precision p) {
    return p == vit::precision::bf16 ? "bf16" : p == vit::precision::int8 ? "int8" : "f32";
}

const char* act_name(vit::hidden_act a) {
    switch (a) {
        case vit::hidden_act::gelu: return "gelu";
        case vit::hidden_act::gelu_tanh: return "gelu_pytorch_tanh";
        case vit::hidden_act::relu: return "relu";
        case vit::hidden_act::quick_gelu: return "quick_gelu";
    }
    return "?";
}

class py_model {
public:
    py_model(const std::string& path_or_id, const std::string& dtype, int threads) {
        vit::load_options lo;
        if (dtype == "f32" || dtype == "float32") lo.compute = vit::precision::f32;
        else if (dtype == "bf16" || dtype == "bfloat16") lo.compute = vit::precision::bf16;
        else if (dtype == "int8") lo.compute = vit::precision::int8;
        else throw vit::error("load_model: dtype must be 'f32', 'bf16' or 'int8', got '" + dtype + "'");
        if (threads < 0 || threads > 1024)
            throw vit::error("load_model: threads must be 1 to 1024 (or None for every core), got " + std::to_string(threads));
        lo.threads = threads;
        dtype_ = lo.compute;
        load_ = lo;
        py::gil_scoped_release nogil;
        dir_ = hub::resolve_model(path_or_id);
        model_ = std::make_shared<vit::model>(vit::load_model(dir_, lo));
    }

    // One list of the top_k predictions per image.
    std::vector<std::vector<vit::prediction>> classify(const py::list& images, int top_k, int batch_size) const {
        const vit::config& c = model_->config();
        if (c.arch != vit::architecture::image_classification)
            throw vit::error(dir_ + ": a " + (c.architecture_name.empty() ? std::string("backbone") : c.architecture_name) +
                             " checkpoint has no classifier; use embed() for its embeddings");
        if (top_k < 0) throw vit::error("classify: top_k must be >= 0, got " + std::to_string(top_k));
        const std::vector<image_source> src = sources(images);
        std::vector<std::vector<vit::prediction>> out;
        py::gil_scoped_release nogil;
        run_batches(src, batch_size, [&](const vit::output<float>& o) {
            for (int r = 0; r < o.batch; ++r)
                out.push_back(vit::top_k(o.logits.row(r).data(), c.num_labels(), top_k, c.labels));
        });
        return out;
    }

    // The family's embedding, [N, D]; L2-normalised rows as vit-classify --normalize.
    py::array_t<float> embed(const py::list& images, bool normalize, int batch_size) const {
        const std::vector<image_source> src = sources(images);
        const py::ssize_t D = model_->embedding_size();
        auto rows = std::make_shared<vit::matrix<float>>();
        {
            py::gil_scoped_release nogil;
            rows->resize(Eigen::Index(src.size()), D);
            Eigen::Index r0 = 0;
            run_batches(src, batch_size, [&](const vit::output<float>& o) {
                rows->middleRows(r0, o.batch) = model_->embedding(o);
                r0 += o.batch;
            });
            if (normalize) l2_normalize_rows(*rows);
        }
        return adopt(rows, rows->data(), {py::ssize_t(src.size()), D});
    }

    // Each text's text_embeds [N, P] (projected; L2-normalised rows with normalize).
    py::array_t<float> embed_text(const py::list& texts, bool normalize) const {
        const std::vector<std::string> t = strings(texts, "text");
        auto rows = std::make_shared<vit::matrix<float>>();
        {
            py::gil_scoped_release nogil;
            *rows = text_tower()->embed(t);
            if (normalize) l2_normalize_rows(*rows);
        }
        return adopt(rows, rows->data(), {rows->rows(), rows->cols()});
    }

    // Each text's input_ids as the text tower gets them, its padding left out.
    std::vector<std::vector<std::int64_t>> tokenize(const py::list& texts) const {
        const std::vector<std::string> t = strings(texts, "text");
        std::vector<std::vector<std::int64_t>> out;
        py::gil_scoped_release nogil;
        const vit::token_batch b = text_tower()->encode(t);
        for (std::size_t i = 0; i < b.input_ids.size(); ++i) {
            std::vector<std::int64_t> ids;
            for (std::size_t k = 0; k < b.input_ids[i].size(); ++k)
                if (b.attention_mask.empty() || b.attention_mask[i][k]) ids.push_back(b.input_ids[i][k]);
            out.push_back(std::move(ids));
        }
        return out;
    }

    // Per image, the labels best first by the pipeline's probs (CLIP softmax, SigLIP sigmoid).
    std::vector<std::vector<vit::prediction>> zero_shot(const py::list& images, const py::list& labels,
                                                        const std::string& hypothesis_template, int top_k,
                                                        int batch_size) const {
        if (top_k < 0) throw vit::error("zero_shot: top_k must be >= 1, got " + std::to_string(top_k));
        const std::vector<std::string> names = strings(labels, "label");
        const std::vector<image_source> src = sources(images);
        std::vector<std::vector<vit::prediction>> out;
        py::gil_scoped_release nogil;
        zero_shot_run(src, names, hypothesis_template, batch_size, [&](const vit::zero_shot_scores<float>& s) {
            for (Eigen::Index r = 0; r < s.probs.rows(); ++r) {
                const float* p = s.probs.row(r).data();
                std::vector<int> order(names.size());
                for (std::size_t j = 0; j < order.size(); ++j) order[j] = int(j);
                std::stable_sort(order.begin(), order.end(), [&](int a, int b) { return p[a] > p[b]; });
                if (top_k > 0 && std::size_t(top_k) < order.size()) order.resize(std::size_t(top_k));
                std::vector<vit::prediction> best;
                for (int j : order) best.push_back({names[std::size_t(j)], j, double(p[j])});
                out.push_back(std::move(best));
            }
        });
        return out;
    }

    // logits_per_image [n_images, n_labels]: exp(logit_scale) * cos (+ logit_bias, SigLIP).
    py::array_t<float> zero_shot_logits(const py::list& images, const py::list& labels,
                                        const std::string& hypothesis_template, int batch_size) const {
        const std::vector<std::string> names = strings(labels, "label");
        const std::vector<image_source> src = sources(images);
        auto rows = std::make_shared<vit::matrix<float>>();
        {
            py::gil_scoped_release nogil;
            rows->resize(Eigen::Index(src.size()), Eigen::Index(names.size()));
            Eigen::Index r0 = 0;
            zero_shot_run(src, names, hypothesis_template, batch_size, [&](const vit::zero_shot_scores<float>& s) {
                rows->middleRows(r0, s.logits_per_image.rows()) = s.logits_per_image;
                r0 += s.logits_per_image.rows();
            });
        }
        return adopt(rows, rows->data(), {rows->rows(), rows->cols()});
    }

    py::array_t<float> preprocess(const py::list& images) const {
        const std::vector<image_source> src = sources(images);
        std::shared_ptr<vit::pixel_values<float>> px;
        {
            py::gil_scoped_release nogil;
            px = std::make_shared<vit::pixel_values<float>>(pixels(src, 0, src.size()));
        }
        return adopt(px, px->data.data(), {px->batch, px->channels, px->height, px->width});
    }

    py::dict forward(const py::array& pixel_values, bool hidden_states, bool attentions) const {
        if (pixel_values.ndim() != 4)
            throw vit::error("forward: pixel_values must be [batch, channels, height, width], got " +
                             std::to_string(pixel_values.ndim()) + " dimensions");
        py::array_t<float, py::array::c_style | py::array::forcecast> a(pixel_values);
        vit::pixel_values<float> px;
        px.batch = int(a.shape(0));
        px.channels = int(a.shape(1));
        px.height = int(a.shape(2));
        px.width = int(a.shape(3));
        auto out = std::make_shared<vit::output<float>>();
        {
            py::gil_scoped_release nogil;
            px.data.assign(a.data(), a.data() + a.size());
            vit::forward_options fo;
            fo.output_hidden_states = hidden_states;
            fo.output_attentions = attentions;
            *out = model_->forward(px, fo);
        }
        const py::ssize_t B = out->batch, T = out->tokens;
        py::dict d;
        auto per_image = [&](const char* key, const vit::matrix<float>& m) {
            if (m.size()) d[key] = adopt(out, m.data(), {B, py::ssize_t(m.cols())});
        };
        per_image("logits", out->logits);
        per_image("cls_logits", out->cls_logits);
        per_image("distillation_logits", out->distillation_logits);
        if (out->last_hidden_state.size())
            d["last_hidden_state"] = adopt(out, out->last_hidden_state.data(), {B, T, py::ssize_t(out->last_hidden_state.cols())});
        per_image("pooler_output", out->pooler_output);
        per_image("image_embeds", out->image_embeds);
        per_image("cls_embedding", out->cls_embedding);
        if (hidden_states) {
            py::tuple t(out->hidden_states.size());
            for (std::size_t l = 0; l < out->hidden_states.size(); ++l)
                t[l] = adopt(out, out->hidden_states[l].data(), {B, T, py::ssize_t(out->hidden_states[l].cols())});
            d["hidden_states"] = t;
        }
        if (attentions) {
            const py::ssize_t heads = model_->config().num_attention_heads;
            py::tuple t(out->attentions.size());
            for (std::size_t l = 0; l < out->attentions.size(); ++l)
                t[l] = adopt(out, out->attentions[l].data(), {B, heads, T, T});
            d["attentions"] = t;
        }
        return d;
    }

    py::dict config() const {
        const vit::config& c = model_->config();
        py::dict d;
        d["model_type"] = vit::family_name(c.family);
        d["architecture"] = c.architecture_name;
        d["is_classifier"] = c.arch == vit::architecture::image_classification;
        d["image_size"] = py::make_tuple(c.image_height, c.image_width);
        d["patch_size"] = c.patch_size;
        d["num_channels"] = c.num_channels;
        d["hidden_size"] = c.hidden_size;
        d["num_hidden_layers"] = c.num_hidden_layers;
        d["num_attention_heads"] = c.num_attention_heads;
        d["intermediate_size"] = c.intermediate_size;
        d["hidden_act"] = act_name(c.act);
        d["layer_norm_eps"] = c.layer_norm_eps;
        d["qkv_bias"] = c.qkv_bias;
        d["use_swiglu_ffn"] = c.use_swiglu_ffn;
        d["num_register_tokens"] = c.num_register_tokens;
        d["projection_dim"] = c.projection_dim;
        d["num_labels"] = c.arch == vit::architecture::image_classification ? c.num_labels() : 0;
        d["prefix_tokens"] = c.prefix_tokens();
        d["embedding_kind"] = model_->embedding_kind();
        d["embedding_size"] = model_->embedding_size();
        const vit::preprocess_config& p = model_->preprocessing();
        const bool crop = p.do_center_crop;
        d["input_size"] = crop ? py::make_tuple(p.crop_height, p.crop_width) : py::make_tuple(p.height, p.width);
        d["dtype"] = dtype_name(dtype_);
        d["path"] = dir_;
        return d;
    }

    std::vector<std::string> labels() const {
        const vit::config& c = model_->config();
        return c.arch == vit::architecture::image_classification ? c.labels : std::vector<std::string>{};
    }
    std::string embedding_kind() const { return model_->embedding_kind(); }
    int embedding_size() const { return model_->embedding_size(); }
    std::string path() const { return dir_; }
    std::string dtype() const { return dtype_name(dtype_); }
    void wait_packed() const {
        py::gil_scoped_release nogil;
        model_->wait_packed();
    }

private:
    vit::pixel_values<float> pixels(const std::vector<image_source>& src, std::size_t b0, std::size_t b1) const {
        std::vector<vit::image> imgs;
        imgs.reserve(b1 - b0);
        for (std::size_t i = b0; i < b1; ++i) imgs.push_back(decode(src[i]));
        return vit::make_pixel_values<float>(imgs, model_->preprocessing());
    }

    // Decode, preprocess and forward `batch_size` images at a time (a batch's
    // outputs equal each image's alone, bit for bit), without the GIL.
    template <class F>
    void run_batches(const std::vector<image_source>& src, int batch_size, F&& each) const {
        if (batch_size < 1) throw vit::error("batch_size must be >= 1, got " + std::to_string(batch_size));
        vit::forward_options fo;
        fo.output_last_hidden_state = false;  // the labels and embeddings need the CLS rows only
        for (std::size_t b0 = 0; b0 < src.size(); b0 += std::size_t(batch_size)) {
            const std::size_t b1 = std::min(src.size(), b0 + std::size_t(batch_size));
            each(model_->forward(pixels(src, b0, b1), fo));
        }
    }

    // The text tower, loaded on the first text call (a vision-only checkpoint
    // loads as before; the call then throws load_text_model's error).
    std::shared_ptr<const vit::text_model> text_tower() const {
        std::lock_guard<std::mutex> lock(text_mutex_);
        return text_tower_locked();
    }
    std::shared_ptr<const vit::text_model> text_tower_locked() const {
        if (!text_) text_ = std::make_shared<const vit::text_model>(vit::load_text_model(dir_, load_));
        return text_;
    }

    // This model's image tower and the text tower, each held once, with
    // logit_scale (logit_bias): made on the first zero-shot call.
    std::shared_ptr<const vit::zero_shot_model> zero_shot_model() const {
        std::lock_guard<std::mutex> lock(text_mutex_);
        if (!zero_shot_)
            zero_shot_ = std::make_shared<const vit::zero_shot_model>(
                vit::zero_shot_model::from(model_, text_tower_locked(), dir_));
        return zero_shot_;
    }

    // The labels' embeddings once, then the images batch by batch through
    // this model's image tower (as vit-classify --label), without the GIL.
    template <class F>
    void zero_shot_run(const std::vector<image_source>& src, const std::vector<std::string>& labels,
                       const std::string& hypothesis_template, int batch_size, F&& each) const {
        if (batch_size < 1) throw vit::error("batch_size must be >= 1, got " + std::to_string(batch_size));
        const std::shared_ptr<const vit::zero_shot_model> zs = zero_shot_model();
        const vit::matrix<float> label_embeds = zs->label_embeddings(labels, hypothesis_template);
        run_batches(src, batch_size, [&](const vit::output<float>& o) { each(zs->scores(model_->embedding(o), label_embeds)); });
    }

    std::string dir_;
    vit::precision dtype_ = vit::precision::f32;
    std::shared_ptr<vit::model> model_;
    vit::load_options load_;
    mutable std::mutex text_mutex_;
    mutable std::shared_ptr<const vit::text_model> text_;
    mutable std::shared_ptr<const vit::zero_shot_model> zero_shot_;
};

}  // namespace

PYBIND11_MODULE(_vit, m) {
    m.doc() = "Vision Transformer inference (the vit C++ library)";
    m.attr("__version__") = VIT_VERSION_STRING;
    m.attr("jpeg_decoder") = vit::jpeg_decoder();
    py::register_exception<vit::error>(m, "Error", PyExc_RuntimeError);

    py::class_<vit::prediction>(m, "Prediction")
        .def_readonly("label", &vit::prediction::label)
        .def_readonly("score", &vit::prediction::score)
        .def_readonly("index", &vit::prediction::index)
        .def("__repr__", [](const vit::prediction& p) {
            return "Prediction(label=" + py::repr(py::str(p.label)).cast<std::string>() +
                   ", score=" + py::repr(py::float_(p.score)).cast<std::string>() + ", index=" + std::to_string(p.index) + ")";
        });

    py::class_<py_model>(m, "Model")
        .def(py::init<const std::string&, const std::string&, int>(), py::arg("path_or_hub_id"), py::arg("dtype"),
             py::arg("threads"))
        .def("classify", &py_model::classify, py::arg("images"), py::arg("top_k"), py::arg("batch_size"))
        .def("embed", &py_model::embed, py::arg("images"), py::arg("normalize"), py::arg("batch_size"))
        .def("embed_text", &py_model::embed_text, py::arg("texts"), py::arg("normalize"))
        .def("tokenize", &py_model::tokenize, py::arg("texts"))
        .def("zero_shot", &py_model::zero_shot, py::arg("images"), py::arg("labels"), py::arg("template"),
             py::arg("top_k"), py::arg("batch_size"))
        .def("zero_shot_logits", &py_model::zero_shot_logits, py::arg("images"), py::arg("labels"),
             py::arg("template"), py::arg("batch_size"))
        .def("preprocess", &py_model::preprocess, py::arg("images"))
        .def("forward", &py_model::forward, py::arg("pixel_values"), py::arg("output_hidden_states"),
             py::arg("output_attentions"))
        .def("wait_packed", &py_model::wait_packed)
        .def_property_readonly("config", &py_model::config)
        .def_property_readonly("labels", &py_model::labels)
        .def_property_readonly("embedding_kind", &py_model::embedding_kind)
        .def_property_readonly("embedding_size", &py_model::embedding_size)
        .def_property_readonly("path", &py_model::path)
        .def_property_readonly("dtype", &py_model::dtype);
}
