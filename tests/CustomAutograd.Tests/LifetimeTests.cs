// SPDX-License-Identifier: MIT
using System.Runtime.CompilerServices;
using NUnit.Framework;
using TorchSharp;
using static TorchSharp.torch;

namespace CustomAutograd.Tests;

/// <summary>Graph nodes and saved tensors are freed when libtorch frees the graph.</summary>
[TestFixture]
[NonParallelizable]
public sealed class LifetimeTests
{
    [Test]
    public void GraphDroppedWithoutBackward_DisposedOutputs_LiveNodesReturnToBaseline()
    {
        long baseline = TestUtil.WaitForLiveNodes(AutogradDiagnostics.ReadCounters().LiveNodes);
        using (NewDisposeScope())
        {
            Tensor x = torch.randn(4, requires_grad: true);
            for (int i = 0; i < 50; i++)
                TestUtil.Sigmoid.Apply(TestUtil.Relu.Apply(x));
            Assert.That(AutogradDiagnostics.ReadCounters().LiveNodes, Is.GreaterThanOrEqualTo(baseline + 100));
        }
        Assert.That(TestUtil.WaitForLiveNodes(baseline), Is.EqualTo(baseline));
    }

    [Test]
    public void GraphDroppedWithoutDispose_FinalizersReclaimNodes()
    {
        long baseline = TestUtil.WaitForLiveNodes(AutogradDiagnostics.ReadCounters().LiveNodes);
        MakeGarbageGraphs();
        Assert.That(TestUtil.WaitForLiveNodes(baseline), Is.EqualTo(baseline));
    }

    [MethodImpl(MethodImplOptions.NoInlining)]
    private static void MakeGarbageGraphs()
    {
        Tensor x = torch.randn(4, requires_grad: true);
        for (int i = 0; i < 20; i++)
            _ = TestUtil.Relu.Apply(x);
    }

    [Test]
    public void AfterBackward_GraphDisposed_NodesAndSavedTensorsReleased()
    {
        long baseline = TestUtil.WaitForLiveNodes(AutogradDiagnostics.ReadCounters().LiveNodes);
        long savedBaseline = AutogradDiagnostics.ReadCounters().LiveSavedTensors;
        using (NewDisposeScope())
        {
            Tensor x = torch.randn(8, requires_grad: true);
            TestUtil.MatMul.Apply(x.reshape(2, 4), x.reshape(4, 2)).sum().backward();
            Assert.That(x.grad, Is.Not.Null);
        }
        Assert.That(TestUtil.WaitForLiveNodes(baseline), Is.EqualTo(baseline));
        Assert.That(AutogradDiagnostics.ReadCounters().LiveSavedTensors, Is.EqualTo(savedBaseline));
    }

    [Test]
    public void OnlyNonDifferentiableOutputs_NodeFreedAtOnce()
    {
        using var scope = NewDisposeScope();
        long baseline = TestUtil.WaitForLiveNodes(AutogradDiagnostics.ReadCounters().LiveNodes);
        UnaryFunction argmaxLike = AutogradFunction.Create(
            "Sign",
            (ctx, x) =>
            {
                Tensor s = x.sign();
                ctx.MarkNonDifferentiable(s);
                return s;
            },
            (ctx, g) => null);
        Tensor y = argmaxLike.Apply(torch.randn(3, requires_grad: true));
        Assert.That(y.requires_grad, Is.False);
        Assert.That(AutogradDiagnostics.ReadCounters().LiveNodes, Is.EqualTo(baseline));
    }

    [Test]
    public void SecondBackwardWithoutRetainGraph_SavedTensorsFreed_RaisesLibtorchError()
    {
        using var scope = NewDisposeScope();
        Tensor x = torch.randn(3, requires_grad: true);
        Tensor loss = TestUtil.Sigmoid.Apply(x).sum();
        loss.backward();
        System.Exception? e = Assert.Catch(() => loss.backward());
        Assert.That(e!.Message, Does.Contain("TestSigmoid").And.Contain("backward through the graph a second time"));
    }

    [Test]
    public void RetainGraph_RepeatedBackward_Accumulates()
    {
        using var scope = NewDisposeScope();
        Tensor x = torch.tensor(new[] { 0.5, -1.0 }, requires_grad: true);
        Tensor loss = TestUtil.Sigmoid.Apply(x).sum();
        loss.backward(retain_graph: true);
        Tensor first = x.grad!.clone();
        loss.backward(retain_graph: true);
        TestUtil.AssertClose(x.grad!, first * 2);
    }
}
