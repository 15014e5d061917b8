// SPDX-License-Identifier: MIT
using System;
using System.Runtime.CompilerServices;
using System.Threading;
using CustomAutograd.TorchSharpInternals;
using NUnit.Framework;
using TorchSharp;
using static TorchSharp.torch;

namespace CustomAutograd.Tests;

/// <summary>
/// Graph teardown never recurses (Note [iterative teardown] in native/src/node.cpp): a long chain of custom nodes
/// that save their inputs and outputs is freed on any thread and by any route without overflowing a stack.
/// </summary>
/// <remarks>
/// The chain has 100,000 nodes by default (before the fix, 30,000 already crashed the process), 1,000,000 with
/// <c>CUSTOMAUTOGRAD_LONG_GRAPH_NODES=1000000</c>.
/// </remarks>
[TestFixture]
[Category("LongGraph")]
[NonParallelizable]
public sealed class TeardownTests
{
    private static readonly int Length =
        int.TryParse(Environment.GetEnvironmentVariable("CUSTOMAUTOGRAD_LONG_GRAPH_NODES"), out int n) && n > 0 ? n : 100_000;

    /// <summary>Saves its input and its output, as a typical custom op does; gradient 1.</summary>
    private static readonly UnaryFunction SavesBoth = AutogradFunction.Create(
        "SavesInputAndOutput",
        (ctx, x) =>
        {
            Tensor y = x.add(KeptScalars.One, KeptScalars.One);   // x + 1 (Note [kept scalars])
            ctx.SaveForBackward(x, y);
            return y;
        },
        (ctx, g) => g);

    private static readonly UnaryFunction Throws = AutogradFunction.Create(
        "ThrowsAtTheEnd", (ctx, x) => x.mul(KeptScalars.One), (ctx, g) => throw new InvalidOperationException("end of chain"));

    private long _baseline;

    [SetUp]
    public void RecordBaseline() => _baseline = TestUtil.WaitForLiveNodes(AutogradDiagnostics.ReadCounters().LiveNodes);

    private static Tensor Chain(Tensor x)
    {
        Tensor y = x;
        for (int i = 0; i < Length; i++)
            y = SavesBoth.Apply(y);
        return y;
    }

    private void AssertFreed()
    {
        Assert.That(TestUtil.WaitForLiveNodes(_baseline), Is.EqualTo(_baseline), "every node was released");
    }

    [Test]
    public void LongChain_DisposeScopeEndsWithoutBackward_FreedWithoutStackOverflow()
    {
        using (NewDisposeScope())
        {
            Tensor y = Chain(torch.zeros(1, requires_grad: true));
            Assert.That(AutogradDiagnostics.ReadCounters().LiveNodes - _baseline, Is.EqualTo(Length));
            Assert.That(y.item<float>(), Is.EqualTo((float)Length));
        }
        AssertFreed();
    }

    [Test]
    public void LongChain_AfterRetainGraphBackward_FreedWithoutStackOverflow()
    {
        Tensor x = torch.zeros(1, requires_grad: true);
        using (NewDisposeScope())
        {
            Chain(x).sum().backward(retain_graph: true);
            TestUtil.AssertClose(x.grad!, torch.ones(1));
        }
        AssertFreed();
    }

    [Test]
    public void LongChain_AfterFailedBackward_FreedWithoutStackOverflow()
    {
        Tensor x = torch.zeros(1, requires_grad: true);
        using (NewDisposeScope())
        {
            Exception? e = Assert.Catch(() => Throws.Apply(Chain(x)).sum().backward());
            Assert.That(e!.Message, Does.Contain("end of chain"));
        }
        AssertFreed();
    }

    [Test]
    public void LongChain_DroppedWithoutDispose_FreedOnTheFinalizerThread()
    {
        // Built on a thread with no dispose scope, then dropped: TorchSharp's finalizers release the tensors, and
        // the last one tears the whole chain down on the finalizer thread.
        var builder = new Thread(BuildAndDrop);
        builder.Start();
        builder.Join();
        AssertFreed();
    }

    [MethodImpl(MethodImplOptions.NoInlining)]
    private static void BuildAndDrop() => _ = Chain(torch.zeros(1, requires_grad: true));

    [Test]
    public void LongChain_PlainBackward_GradientCorrectAndFreed()
    {
        Tensor x = torch.zeros(1, requires_grad: true);
        using (NewDisposeScope())
            Chain(x).sum().backward();
        TestUtil.AssertClose(x.grad!, torch.ones(1));
        AssertFreed();
    }
}
