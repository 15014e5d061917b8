// SPDX-License-Identifier: MIT
using System;
using System.Collections.Generic;
using NUnit.Framework;
using TorchSharp;
using static TorchSharp.torch;

namespace CustomAutograd.Tests;

/// <summary>ForwardContext and BackwardContext: saves, NeedsInputGrad, state, validity.</summary>
[TestFixture]
public sealed class ContextTests
{
    [Test]
    public void NeedsInputGrad_OneOfTwoInputsRequiresGrad_ReportedPerInputInBothContexts()
    {
        using var scope = NewDisposeScope();
        IReadOnlyList<bool>? inForward = null, inBackward = null;
        BinaryFunction f = AutogradFunction.Create(
            "NeedsProbe",
            (ctx, a, b) =>
            {
                inForward = new List<bool>(ctx.NeedsInputGrad);
                return a * b;
            },
            (ctx, g) =>
            {
                inBackward = new List<bool>(ctx.NeedsInputGrad);
                return (g, null);
            });
        Tensor a = torch.ones(3, requires_grad: true);
        Tensor b = torch.ones(3);

        f.Apply(a, b).sum().backward();

        Assert.That(inForward, Is.EqualTo(new[] { true, false }));
        Assert.That(inBackward, Is.EqualTo(new[] { true, false }));
        Assert.That(b.grad, Is.Null);
        TestUtil.AssertClose(a.grad!, torch.ones(3));
    }

    [Test]
    public void Apply_UnderNoGrad_NoNodeOutputDoesNotRequireGradNeedsInputGradIsRequiresGrad()
    {
        using var scope = NewDisposeScope();
        IReadOnlyList<bool>? needs = null;
        UnaryFunction f = AutogradFunction.Create(
            "NoGradProbe",
            (ctx, x) =>
            {
                needs = new List<bool>(ctx.NeedsInputGrad);
                return x * 2;
            },
            (ctx, g) => g * 2);
        Tensor x = torch.ones(2, requires_grad: true);
        long before = AutogradDiagnostics.ReadCounters().NodesCreated;

        Tensor y;
        using (no_grad())
            y = f.Apply(x);

        Assert.That(AutogradDiagnostics.ReadCounters().NodesCreated, Is.EqualTo(before));
        Assert.That(y.requires_grad, Is.False);
        Assert.That(needs, Is.EqualTo(new[] { true }), "as PyTorch: requires_grad at forward time, whatever the grad mode");
        TestUtil.AssertClose(y, torch.full(2, 2f));
    }

    [Test]
    public void Apply_InputDoesNotRequireGrad_NoNodeCreated()
    {
        using var scope = NewDisposeScope();
        long before = AutogradDiagnostics.ReadCounters().NodesCreated;
        Tensor y = TestUtil.Relu.Apply(torch.ones(4));
        Assert.That(AutogradDiagnostics.ReadCounters().NodesCreated, Is.EqualTo(before));
        Assert.That(y.requires_grad, Is.False);
    }

    [Test]
    public void SaveForBackward_Named_ReadBackByName()
    {
        using var scope = NewDisposeScope();
        UnaryFunction f = AutogradFunction.Create(
            "NamedSave",
            (ctx, x) =>
            {
                ctx.SaveForBackward("doubled", x * 2);
                ctx.SaveForBackward("input", x);
                return x.pow(2);
            },
            (ctx, g) =>
            {
                Assert.That(ctx.Saved.Names, Is.EqualTo(new[] { "doubled", "input" }));
                Assert.That(ctx.SavedTensors, Is.Empty);
                return g * ctx.Saved["doubled"]!;
            });
        Tensor x = torch.tensor(new[] { 1.0, -2.0, 3.0 }, requires_grad: true);
        f.Apply(x).sum().backward();
        TestUtil.AssertClose(x.grad!, torch.tensor(new[] { 2.0, -4.0, 6.0 }));
    }

    [Test]
    public void SaveForBackward_Positional_ReadBackInOrderIncludingNull()
    {
        using var scope = NewDisposeScope();
        int count = -1;
        bool secondIsNull = false;
        UnaryFunction f = AutogradFunction.Create(
            "PositionalSave",
            (ctx, x) =>
            {
                ctx.SaveForBackward(x, null, x + 1);
                return x * 3;
            },
            (ctx, g) =>
            {
                count = ctx.SavedTensors.Count;
                secondIsNull = ctx.SavedTensors[1] is null;
                return g * (ctx.SavedTensors[2]! - ctx.SavedTensors[0]!) * 3;
            });
        Tensor x = torch.ones(2, requires_grad: true);
        f.Apply(x).sum().backward();
        Assert.That(count, Is.EqualTo(3));
        Assert.That(secondIsNull, Is.True);
        TestUtil.AssertClose(x.grad!, torch.full(2, 3f));
    }

    [Test]
    public void Saved_UnknownName_BackwardFailsListingSavedNames()
    {
        using var scope = NewDisposeScope();
        UnaryFunction f = AutogradFunction.Create(
            "WrongName",
            (ctx, x) =>
            {
                ctx.SaveForBackward("input", x);
                return x.clone();
            },
            (ctx, g) => g * ctx.Saved["inptu"]!);
        Tensor x = torch.ones(2, requires_grad: true);
        Exception? e = Assert.Catch(() => f.Apply(x).sum().backward());
        Assert.That(e!.Message, Does.Contain("WrongName").And.Contain("'inptu'").And.Contain("'input'"));
    }

    [Test]
    public void State_SetInForward_ReadInBackward()
    {
        using var scope = NewDisposeScope();
        UnaryFunction scale = AutogradFunction.Create(
            "Scale",
            (ctx, x) =>
            {
                ctx.SetState(2.5);
                return x * 2.5;
            },
            (ctx, g) => g * ctx.GetState<double>());
        Tensor x = torch.ones(3, requires_grad: true);
        scale.Apply(x).sum().backward();
        TestUtil.AssertClose(x.grad!, torch.full(3, 2.5f));
    }

    [Test]
    public void ForwardContext_UsedAfterApply_ThrowsObjectDisposed()
    {
        using var scope = NewDisposeScope();
        ForwardContext? kept = null;
        UnaryFunction f = AutogradFunction.Create("KeepsContext", (ctx, x) => { kept = ctx; return x.clone(); }, (ctx, g) => g);
        f.Apply(torch.ones(1, requires_grad: true));
        Assert.Throws<ObjectDisposedException>(() => kept!.SaveForBackward(torch.ones(1)));
    }

    [Test]
    public void BackwardContext_UsedAfterBackward_ThrowsObjectDisposed()
    {
        using var scope = NewDisposeScope();
        BackwardContext? kept = null;
        UnaryFunction f = AutogradFunction.Create("KeepsBackwardContext", (ctx, x) => x.clone(), (ctx, g) => { kept = ctx; return g; });
        f.Apply(torch.ones(1, requires_grad: true)).sum().backward();
        Assert.Throws<ObjectDisposedException>(() => _ = kept!.SavedTensors);
    }

    [Test]
    public void Apply_ReturnsInputAsIs_GradientFlowsThroughNewNode()
    {
        using var scope = NewDisposeScope();
        UnaryFunction identity = AutogradFunction.Create("Identity", (ctx, x) => x, (ctx, g) => g * 5);
        Tensor x = torch.ones(3, requires_grad: true);
        Tensor y = identity.Apply(x);
        Assert.That(y.requires_grad, Is.True);
        Assert.That(y.is_leaf, Is.False);
        y.sum().backward();
        TestUtil.AssertClose(x.grad!, torch.full(3, 5f));
    }

    [Test]
    public void Backward_BroadcastableGradientShape_SummedByLibtorch()
    {
        using var scope = NewDisposeScope();
        // The input is [1, 3]; the Backward returns [4, 3], which libtorch sums down to [1, 3].
        UnaryFunction f = AutogradFunction.Create("Broadcasts", (ctx, x) => x.expand(4, 3).clone(), (ctx, g) => g);
        Tensor x = torch.ones(1, 3, requires_grad: true);
        f.Apply(x).sum().backward();
        TestUtil.AssertClose(x.grad!, torch.full(new long[] { 1, 3 }, 4f));
    }
}
