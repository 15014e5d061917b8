// SPDX-License-Identifier: MIT
using System;
using NUnit.Framework;
using TorchSharp;
using static TorchSharp.torch;

namespace CustomAutograd.Tests;

/// <summary>Autograd.Backward, the counterpart of torch.autograd.backward with one exception type for every failure.</summary>
[TestFixture]
public sealed class AutogradBackwardTests
{
    [Test]
    public void Backward_OneLoss_SameGradientsAsTorchSharpBackward()
    {
        using var scope = NewDisposeScope();
        Tensor x = torch.tensor(new[] { -1.0, 2.0, 3.0 }, requires_grad: true);
        Tensor expected = torch.tensor(new[] { 0.0, 4.0, 6.0 });
        Autograd.Backward((TestUtil.Relu.Apply(x) * x).sum());
        TestUtil.AssertClose(x.grad!, expected);
        Autograd.Backward(new[] { (TestUtil.Relu.Apply(x) * x).sum() });
        TestUtil.AssertClose(x.grad!, expected * 2, rtol: 0, atol: 0);   // accumulated, as loss.backward() does
    }

    [Test]
    public void Backward_SeveralTensorsWithGradients_SumOfVectorJacobianProducts()
    {
        using var scope = NewDisposeScope();
        Tensor a = torch.tensor(new[] { 1.0, 2.0 }, requires_grad: true);
        Tensor b = torch.tensor(new[] { 3.0, 5.0 }, requires_grad: true);
        Tensor[] outs = TestUtil.SumAndProduct.Apply(a, b);
        Autograd.Backward(outs, new Tensor?[] { torch.tensor(new[] { 1.0, 10.0 }), torch.tensor(new[] { 2.0, 3.0 }) });
        // d(sum)/da = 1, d(prod)/da = b
        TestUtil.AssertClose(a.grad!, torch.tensor(new[] { 1.0 + 2.0 * 3.0, 10.0 + 3.0 * 5.0 }));
        TestUtil.AssertClose(b.grad!, torch.tensor(new[] { 1.0 + 2.0 * 1.0, 10.0 + 3.0 * 2.0 }));
    }

    [Test]
    public void Backward_Inputs_AccumulatesOnlyIntoThoseTensors()
    {
        using var scope = NewDisposeScope();
        Tensor a = torch.tensor(new[] { 1.0, 2.0 }, requires_grad: true);
        Tensor b = torch.tensor(new[] { 3.0, 5.0 }, requires_grad: true);
        Autograd.Backward(TestUtil.SumAndProduct.Apply(a, b)[1].sum(), inputs: new[] { b });
        Assert.That(a.grad, Is.Null);
        TestUtil.AssertClose(b.grad!, a.detach());
    }

    [Test]
    public void Backward_FailingCustomBackward_CustomAutogradExceptionWithTheOriginalInside()
    {
        using var scope = NewDisposeScope();
        var thrown = new InvalidOperationException("original");
        UnaryFunction f = AutogradFunction.Create("FailsInBackward", (ctx, x) => x * 2, (ctx, g) => throw thrown);
        var e = Assert.Throws<CustomAutogradException>(() => Autograd.Backward(f.Apply(torch.ones(2, requires_grad: true)).sum()));
        Assert.That(e!.InnerException, Is.SameAs(thrown));
        Assert.That(e.Message, Does.Contain("FailsInBackward").And.Contain("original"));
    }

    [Test]
    public void Backward_Twice_SecondFailsUnlessGraphRetained()
    {
        using var scope = NewDisposeScope();
        Tensor x = torch.ones(2, requires_grad: true);
        Tensor loss = TestUtil.Sigmoid.Apply(x).sum();
        Autograd.Backward(loss, retainGraph: true);
        Autograd.Backward(loss);
        var e = Assert.Throws<CustomAutogradException>(() => Autograd.Backward(loss));
        Assert.That(e!.Message, Does.Contain("second time"));
        Assert.That(e.InnerException, Is.Null, "a libtorch error carries no .NET exception");
    }

    [Test]
    public void Backward_CreateGraph_GradientIsDifferentiable()
    {
        using var scope = NewDisposeScope();
        Tensor x = torch.tensor(new[] { 2.0 }, requires_grad: true);
        Tensor y = TestUtil.Sigmoid.Apply(x);
        Tensor? first;
        using (new CapturedStderr())   // libtorch warns that backward(create_graph) makes a parameter-gradient cycle
        {
            Autograd.Backward(y.sum(), createGraph: true);
            first = x.grad;
        }
        Assert.That(first!.requires_grad, Is.True);
        Tensor s = torch.sigmoid(torch.tensor(new[] { 2.0 }));
        TestUtil.AssertClose(first.detach(), s * (1 - s));
        x.grad = null;   // break the cycle libtorch warned about
    }

    [Test]
    public void Backward_BadArguments_ThrowBeforeAnythingRuns()
    {
        using var scope = NewDisposeScope();
        Tensor x = torch.ones(2, requires_grad: true);
        Tensor y = x * 2;
        Assert.Throws<ArgumentException>(() => Autograd.Backward(Array.Empty<Tensor>()));
        var implicitOnes = Assert.Throws<CustomAutogradException>(() => Autograd.Backward(y));
        Assert.That(implicitOnes!.Message, Does.Contain("scalar"), "libtorch implies ones only for scalars");
        Assert.Throws<ArgumentException>(() => Autograd.Backward(new[] { y }, new Tensor?[] { null, null }));
        Assert.Throws<ArgumentException>(() => Autograd.Backward(y.sum(), inputs: Array.Empty<Tensor>()));
        Tensor disposed = torch.ones(1);
        disposed.Dispose();
        Assert.Throws<ObjectDisposedException>(() => Autograd.Backward(disposed));
        Assert.That(x.grad, Is.Null);
    }
}
