// SPDX-License-Identifier: MIT
using System;
using NUnit.Framework;
using TorchSharp;
using static TorchSharp.torch;

namespace CustomAutograd.Tests;

/// <summary>
/// Structural performance guarantees (no timing): managed allocations per call, and saved tensors' storage
/// released as soon as backward has used them.
/// </summary>
[TestFixture]
[NonParallelizable]
public sealed class PerformanceStructureTests
{
    private static readonly UnaryFunction Identity = AutogradFunction.Create("Identity", (ctx, x) => x.clone(), (ctx, g) => g);

    [Test]
    public void IdentityForwardBackward_Warm_AllocatesAtMost1KiBOfManagedMemoryPerCallBeyondTheBuiltInStep()
        => Assert.That(AddedBytesPerIdentityStep(), Is.LessThanOrEqualTo(1024));

    [Test]
    public void IdentityForwardBackward_Warm_ReusesDelegateScopes_AddsAtMostHalfAKiB()
    {
        // Fresh TorchSharp dispose scopes for the two delegates would alone add about 450 bytes per call
        // (DelegateScope reuses them per thread); the contexts, node state and gradient wrapper need about 300.
        Assert.That(AddedBytesPerIdentityStep(), Is.LessThanOrEqualTo(512));
    }

    private static double AddedBytesPerIdentityStep()
    {
        Tensor x = torch.ones(16, requires_grad: true);
        void BuiltIn()
        {
            using var scope = NewDisposeScope();
            x.clone().sum().backward();
            x.grad!.zero_();
        }
        void Custom()
        {
            using var scope = NewDisposeScope();
            Identity.Apply(x).sum().backward();
            x.grad!.zero_();
        }
        const int calls = 2000;
        double builtIn = BytesPerCall(BuiltIn, calls);
        double custom = BytesPerCall(Custom, calls);
        TestContext.Out.WriteLine($"managed bytes per step: built-in clone {builtIn:F0}, custom identity {custom:F0}, added {custom - builtIn:F0}");
        return custom - builtIn;
    }

    private static double BytesPerCall(Action step, int calls)
    {
        for (int i = 0; i < 200; i++)
            step();
        long before = GC.GetAllocatedBytesForCurrentThread();
        for (int i = 0; i < calls; i++)
            step();
        return (GC.GetAllocatedBytesForCurrentThread() - before) / (double)calls;
    }

    [Test]
    public void SavedTensor_AfterBackwardWithoutRetainGraph_StorageReleasedAtOnce()
    {
        // A 256 MiB intermediate created in the Forward is kept only by its saved variable. libtorch returns
        // such a large block to the operating system when it is freed, so the resident set size shows when.
        const long elements = 64L * 1024 * 1024;
        using var scope = NewDisposeScope();
        Tensor x = torch.ones(4, requires_grad: true);
        UnaryFunction saver = AutogradFunction.Create(
            "SavesLargeIntermediate",
            (ctx, t) =>
            {
                Tensor big = torch.ones(elements) * t.sum();   // pages touched: resident
                ctx.SaveForBackward(big);
                return t * 3;
            },
            (ctx, g) => g * (ctx.SavedTensors[0]![0] / 4 * 3));

        double baseline = ResidentMiB();
        Tensor y = saver.Apply(x);
        double afterForward = ResidentMiB();
        y.sum().backward();
        double afterBackward = ResidentMiB();
        TestContext.Out.WriteLine($"RSS: {baseline:F0} MiB, after forward {afterForward:F0} MiB, after backward {afterBackward:F0} MiB");

        TestUtil.AssertClose(x.grad!, torch.full(4, 3f));
        Assert.That(afterForward - baseline, Is.GreaterThan(200), "the saved intermediate is resident while the graph waits");
        Assert.That(afterForward - afterBackward, Is.GreaterThan(200), "freed right after backward, while y still holds the graph");
        Assert.That(y.requires_grad, Is.True);
    }

    [Test]
    public void LargeGradientFromBackward_ReleasedAtTheEndOfThePass_NotHeldByTheThread()
    {
        // A 256 MiB gradient computed by a Backward must not outlive the backward pass (it is handed to libtorch,
        // which copies it after the callback returns; the shim releases it with a final callback of the pass).
        const long elements = 64L * 1024 * 1024;
        using var scope = NewDisposeScope();
        UnaryFunction sumAll = AutogradFunction.Create(
            "LargeGradient", (ctx, t) => t.sum(), (ctx, g) => torch.ones(elements) * g);   // a fresh 256 MiB gradient
        Tensor x = torch.ones(elements).requires_grad_(true);   // written, so resident
        double baseline = ResidentMiB();
        Tensor loss = sumAll.Apply(x);
        loss.backward();
        double afterBackward = ResidentMiB();
        TestContext.Out.WriteLine($"RSS: {baseline:F0} MiB before, {afterBackward:F0} MiB after backward (x.grad adds 256 MiB)");
        Assert.That(x.grad!.numel(), Is.EqualTo(elements));
        // x.grad itself is 256 MiB; a retained gradient would add another 256 MiB.
        Assert.That(afterBackward - baseline, Is.LessThan(400));
    }

    private static double ResidentMiB()
    {
        // Second field of /proc/self/statm: resident pages.
        string[] fields = System.IO.File.ReadAllText("/proc/self/statm").Split(' ');
        return long.Parse(fields[1], System.Globalization.CultureInfo.InvariantCulture) * Environment.SystemPageSize / (1024.0 * 1024.0);
    }
}
