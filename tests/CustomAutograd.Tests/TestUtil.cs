// SPDX-License-Identifier: MIT
using System;
using System.Threading;
using CustomAutograd.TorchSharpInternals;
using NUnit.Framework;
using TorchSharp;
using static TorchSharp.torch;

namespace CustomAutograd.Tests;

/// <summary>Shared functions and assertions.</summary>
internal static class TestUtil
{
    // These functions run in long loops and on many threads, so they hand TorchSharp only kept Scalars (Note [kept
    // scalars] in KeptScalars.cs; GuardTests.TestsInLoops_NeverHandTorchSharpATemporaryScalar): `a.add(b, One)`
    // instead of `a + b`, whose implicit alpha of 1 is a temporary Scalar.
    private static readonly Scalar Zero = KeptScalars.Zero, One = KeptScalars.One;

    internal static readonly UnaryFunction Relu = TestFunctions.SavingInput(
        "TestReLU", x => x.clamp_min(Zero), (g, x) => g.masked_fill(x.lt(Zero), Zero));

    internal static readonly UnaryFunction Sigmoid = TestFunctions.SavingOutput(
        "TestSigmoid", x => x.sigmoid(), (g, y) => g * y * y.neg().add(One, One));

    internal static readonly BinaryFunction MatMul = TestFunctions.SavingInputs(
        "TestMatMul", (a, b) => a.mm(b), (g, a, b) => (g.mm(b.t()), a.t().mm(g)));

    /// <summary>(a, b) -> (a + b, a * b).</summary>
    internal static readonly MultiFunction SumAndProduct = TestFunctions.SumAndProduct(
        "TestSumAndProduct", (gs, a, b) => new[] { gs[0]!.add(gs[1]! * b, One), gs[0]!.add(gs[1]! * a, One) });

    internal static void AssertClose(Tensor actual, Tensor expected, double rtol = 1e-5, double atol = 1e-6)
    {
        Assert.That(actual.shape, Is.EqualTo(expected.shape), "shape");
        Assert.That(actual.dtype, Is.EqualTo(expected.dtype), "dtype");
        bool close = actual.allclose(expected, rtol, atol);
        Assert.That(close, Is.True, () => $"values differ: max |diff| = {(actual - expected).abs().max().to_type(ScalarType.Float64).item<double>()}");
    }

    /// <summary>Runs finalizers until the shim's live-node count is back to <paramref name="baseline"/> (or 10 s pass).</summary>
    internal static long WaitForLiveNodes(long baseline)
    {
        long live = AutogradDiagnostics.ReadCounters().LiveNodes;
        for (int i = 0; i < 100 && live > baseline; i++)
        {
            GC.Collect();
            GC.WaitForPendingFinalizers();
            GC.Collect();
            live = AutogradDiagnostics.ReadCounters().LiveNodes;
            if (live > baseline)
                Thread.Sleep(100);
        }
        return live;
    }

    internal static Tensor Rand(long[] shape, ScalarType dtype, bool requiresGrad = true) =>
        torch.randn(shape, dtype: dtype, requires_grad: requiresGrad);
}
