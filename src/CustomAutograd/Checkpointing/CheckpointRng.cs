// SPDX-License-Identifier: MIT
using System;
using System.Collections.Generic;
using TorchSharp;
using static TorchSharp.torch;

namespace CustomAutograd;

// Random-number state of a checkpointed segment: saved by the forward, replayed for the recompute, and the
// surrounding state put back afterwards (PyTorch's fork_rng around the recompute).
// Note [checkpoint RNG]: TorchSharp 0.107 reads and writes the state of CPU generators only
// (torch.get_rng_state, Generator.get_state); for CUDA it has torch.cuda.manual_seed_all and
// nothing else. So a segment whose inputs or parameters are on CUDA cannot save the CUDA generators' state.
// Instead its forward draws a 63-bit seed from the default CPU generator (right after saving that generator's
// state) and reseeds every CUDA generator with it; the recompute restores the CPU state, which draws the same
// seed again, and reseeds the CUDA generators identically, so random CUDA operations repeat exactly. After the
// recompute the CUDA generators are reseeded once more from the (restored) CPU generator, so random operations
// after the backward do not repeat numbers the forward already used. The CUDA streams are thereby derived
// deterministically from the CPU generator (reproducible under torch.manual_seed), but differ from the
// streams an un-checkpointed run would see, and each checkpoint advances the CPU stream by one draw in the
// forward and one in the backward. CPU-only segments leave every stream exactly as without checkpointing.
internal static class CheckpointRng
{
    private const string CpuKey = "checkpoint.rng.cpu";
    private const string GeneratorKeyPrefix = "checkpoint.rng.generator.";

    // In the forward, before the segment runs: saves the states and reseeds CUDA (Note [checkpoint RNG]).
    internal static void Capture(ForwardContext ctx, CheckpointCall call)
    {
        ctx.SaveForBackward(CpuKey, torch.get_rng_state());
        IReadOnlyList<Generator>? generators = call.Options.Generators;
        if (generators is not null)
        {
            for (int i = 0; i < generators.Count; i++)
                ctx.SaveForBackward(GeneratorKeyPrefix + i, generators[i].get_state());
        }
        if (call.UsesCuda)
            ReseedCuda();
    }

    // In the backward, before the recompute: puts the forward's states in place and returns what restores the
    // surrounding ones.
    internal static Fork Enter(BackwardContext ctx, CheckpointCall call)
    {
        Tensor surroundingCpu = torch.get_rng_state();
        IReadOnlyList<Generator>? generators = call.Options.Generators;
        Tensor[]? surroundingGenerators = null;
        if (generators is not null)
        {
            surroundingGenerators = new Tensor[generators.Count];
            for (int i = 0; i < generators.Count; i++)
                surroundingGenerators[i] = generators[i].get_state();
        }
        var fork = new Fork(surroundingCpu, generators, surroundingGenerators, call.UsesCuda);
        try
        {
            torch.set_rng_state(ctx.Saved[CpuKey]!);
            if (generators is not null)
            {
                for (int i = 0; i < generators.Count; i++)
                    generators[i].set_state(ctx.Saved[GeneratorKeyPrefix + i]!);
            }
            if (call.UsesCuda)
                ReseedCuda();   // the same seed as the forward's: drawn from the same CPU state
        }
        catch
        {
            fork.Dispose();
            throw;
        }
        return fork;
    }

    private static void ReseedCuda()
    {
        using Tensor drawn = torch.randint(long.MaxValue, new long[] { 1 }, ScalarType.Int64);
        torch.cuda.manual_seed_all(drawn.item<long>());
    }

    // Restores the surrounding states when disposed (after the recompute, whether it succeeded or not).
    internal readonly struct Fork : IDisposable
    {
        private readonly Tensor _cpu;
        private readonly IReadOnlyList<Generator>? _generators;
        private readonly Tensor[]? _generatorStates;
        private readonly bool _cuda;

        internal Fork(Tensor cpu, IReadOnlyList<Generator>? generators, Tensor[]? generatorStates, bool cuda)
        {
            _cpu = cpu;
            _generators = generators;
            _generatorStates = generatorStates;
            _cuda = cuda;
        }

        public void Dispose()
        {
            torch.set_rng_state(_cpu);
            if (_generators is not null)
            {
                for (int i = 0; i < _generators.Count; i++)
                    _generators[i].set_state(_generatorStates![i]);
            }
            if (_cuda)
                ReseedCuda();   // fresh numbers after the backward (Note [checkpoint RNG])
        }
    }
}
