// SPDX-License-Identifier: MIT
/*
 * Network descriptions for accel-run: a sequential model read from a JSON
 * or text file (or built in), turned into an accel::Graph with weights
 * from files or a seeded generator.
 */
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include <accel/accel.h>

namespace tools {

struct LayerSpec {
	std::string op;
	/* Parameters as text: "units" -> "128", "kernel" -> "3x3", "relu" -> "1". */
	std::map<std::string, std::string> args;
	/* Where the layer was defined, for messages ("model.txt:4"). */
	std::string where;
};

struct ModelSpec {
	std::string name;
	std::string input_name = "x";
	std::vector<uint32_t> input_shape;
	uint64_t seed = 1;
	std::vector<LayerSpec> layers;
	/* Directory weight files are relative to. */
	std::string base_dir;
};

/* Built-in models ("mlp", "cnn", ...), for the README's main job and tests. */
std::vector<std::string> builtin_models();
accel::Result<ModelSpec> builtin_model(const std::string &name);

/* Read a model file: JSON when it starts with '{', else the text format. */
accel::Result<ModelSpec> load_model(const std::string &path);
/* Parse model text (JSON or the line format). */
accel::Result<ModelSpec> parse_model(const std::string &text, const std::string &where);

struct BuiltModel {
	accel::Graph graph;
	accel::TensorId input;
	accel::TensorId output;
	std::vector<float> input_values;
};

/* The graph of a model, with weights loaded or generated from seed. */
accel::Result<BuiltModel> build_model(const ModelSpec &m, uint64_t seed);

/* Seeded values in [-scale, scale]. */
std::vector<float> seeded_values(size_t n, uint64_t seed, float scale);

} // namespace tools
