// The options of the commands that run on a dp x pp x tp grid of MPI ranks (--dp, --pp, --tp,
// --pp-layers), and the start-up phase that every rank of such a job passes or all leave.
#pragma once

#include <cstdint>
#include <functional>
#include <vector>

#include <boost/program_options.hpp>

#include "parallel/topology.h"

namespace gridlm {

class MpiEnv;

struct GridOptions {
    GridShape shape;                 // --dp, --pp, --tp (each >= 1)
    std::vector<int64_t> pp_layers;  // --pp-layers 10,20: layers per stage; empty = balanced by weight bytes
};

// Adds --dp, --pp, --tp and --pp-layers. `unit` names what a replica takes every dp-th of
// ("record", "window or record").
void add_grid_options(boost::program_options::options_description& opts, const char* unit);

// Reads them back. Throws UsageError for a dimension < 1 or a --pp-layers entry that is not a
// number ("--pp-layers: 'x' is not a number (expected e.g. 10,20)").
GridOptions grid_options_from(const boost::program_options::variables_map& vm);

// Runs one start-up phase on every rank. When any rank fails, the failing ranks print their
// error ("gridlm COMMAND: rank R of N (HOST): error: ..." in a multi-rank job) and every rank
// throws ExitStatus with the worst status: exit_usage for a UsageError, else exit_fatal. A
// collective: every rank must call it.
void collective_phase(const MpiEnv& mpi, const char* command, const std::function<void()>& phase);

}  // namespace gridlm
