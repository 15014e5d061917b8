// SPDX-License-Identifier: MIT
using NUnit.Framework;
using static CustomAutograd.Tests.GradCheckTestFunctions;
using static TorchSharp.torch;

namespace CustomAutograd.Tests;

/// <summary>GradGradCheck: twice-differentiable Backwards pass, wrong double backwards fail precisely.</summary>
[TestFixture]
public sealed class GradCheckGradGradTests
{
    [Test]
    public void GradGradCheck_CubeWithDifferentiableBackward_Passes()
    {
        using var scope = NewDisposeScope();
        GradCheckResult result = GradGradCheck.Check(Cube, Float64(new long[] { 2, 3 }));

        Assert.That(result.Passed, Is.True, result.ToString);
        Assert.That(result.CheckName, Is.EqualTo("GradGradCheck"));
        Assert.That(result.InputCount, Is.EqualTo(2), "the input and the generated output gradient");
        Assert.That(result.DifferentiableInputCount, Is.EqualTo(2));
    }

    [Test]
    public void GradGradCheck_SigmoidSavingItsOutput_Passes()
    {
        using var scope = NewDisposeScope();
        GradCheckResult result = GradGradCheck.Check(TestUtil.Sigmoid, Float64(new long[] { 4 }));
        Assert.That(result.Passed, Is.True, result.ToString);
    }

    [Test]
    public void GradGradCheck_MatMul_Passes()
    {
        using var scope = NewDisposeScope();
        GradCheckResult result = GradGradCheck.Check(TestUtil.MatMul, Float64(new long[] { 2, 3 }), Float64(new long[] { 3, 2 }));
        Assert.That(result.Passed, Is.True, result.ToString);
    }

    [Test]
    public void GradGradCheck_TwoOutputsWithGivenGradOutputs_Passes()
    {
        using var scope = NewDisposeScope();
        Tensor[] inputs = { Float64(new long[] { 3 }), Float64(new long[] { 3 }) };
        Tensor[] gradOutputs = { Float64(new long[] { 3 }), Float64(new long[] { 3 }) };

        GradCheckResult result = GradGradCheck.Check(TestUtil.SumAndProduct, inputs, gradOutputs);

        Assert.That(result.Passed, Is.True, result.ToString);
        Assert.That(result.InputCount, Is.EqualTo(4));
    }

    [Test]
    public void GradGradCheck_PlainTorchSharpFunction_Passes()
    {
        using var scope = NewDisposeScope();
        GradCheckResult result = GradGradCheck.Check((a, b) => (a.tanh() * b).sum(-1), Float64(new long[] { 2, 3 }), Float64(new long[] { 2, 3 }));
        Assert.That(result.Passed, Is.True, result.ToString);
    }

    [Test]
    public void GradGradCheck_NonContiguousGradOutputsAndFastMode_Pass()
    {
        using var scope = NewDisposeScope();
        Tensor x = Float64(new long[] { 3, 4 });

        GradCheckResult nonContiguous = GradGradCheck.Check(Cube, x, options: new GradCheckOptions { NonContiguousGradOutputs = true, Seed = 5 });
        GradCheckResult fast = GradGradCheck.Check(Cube, x, options: new GradCheckOptions { FastMode = true, Seed = 5 });

        Assert.That(nonContiguous.Passed, Is.True, nonContiguous.ToString);
        Assert.That(fast.Passed, Is.True, fast.ToString);
    }

    [Test]
    public void GradGradCheck_DetachedBackward_ReportsSecondDerivative()
    {
        using var scope = NewDisposeScope();
        Tensor x = Float64(new[] { 1.0, 2.0, -0.5 });
        Tensor g = Float64(new[] { 0.5, -1.0, 2.0 });

        GradCheckResult result = GradGradCheck.Check(CubeDetachedBackward, x, g, GradCheckTestFunctions.NoRaise);

        // d(3 x^2 g)/dx = 6 x g = [3, -12, -6]; the detached backward gives 0. The worst element is the largest.
        Assert.That(result.FailureKind, Is.EqualTo(GradCheckFailureKind.JacobianMismatch));
        Assert.That(result.OutputName, Is.EqualTo("grad of input 0"));
        Assert.That(result.InputName, Is.EqualTo("input 0"));
        GradCheckMismatch mismatch = result.FirstMismatch!;
        Assert.That(mismatch.InputElementIndex, Is.EqualTo(new long[] { 1 }));
        Assert.That(mismatch.OutputElementIndex, Is.EqualTo(new long[] { 1 }));
        Assert.That(mismatch.Numerical, Is.EqualTo(-12.0).Within(1e-6));
        Assert.That(mismatch.Analytical, Is.EqualTo(0.0));
        Assert.That(result.ToString(), Does.StartWith("GradGradCheck failed").And.Contain("d grad of input 0[1] / d input 0[1]"));
    }

    [Test]
    public void GradGradCheck_WrongDoubleBackwardForInput_Fails()
    {
        using var scope = NewDisposeScope();
        Tensor x = Float64(new[] { 1.0, 2.0, -0.5 });
        Tensor g = Float64(new[] { 0.5, -1.0, 2.0 });

        GradCheckResult first = GradCheck.Check(CubeWrongDoubleBackwardX, x);
        GradCheckResult result = GradGradCheck.Check(CubeWrongDoubleBackwardX, x, g, GradCheckTestFunctions.NoRaise);

        Assert.That(first.Passed, Is.True, "the first derivative is right: " + first);
        Assert.That(result.Mismatches, Has.Count.EqualTo(1));
        Assert.That(result.InputName, Is.EqualTo("input 0"));
        GradCheckMismatch mismatch = result.FirstMismatch!;
        Assert.That(mismatch.InputElementIndex, Is.EqualTo(new long[] { 1 }));
        Assert.That(mismatch.Numerical, Is.EqualTo(-12.0).Within(1e-6));
        Assert.That(mismatch.Analytical, Is.EqualTo(-6.0).Within(1e-12), "the planted 3 x g instead of 6 x g");
    }

    [Test]
    public void GradGradCheck_WrongDoubleBackwardForGradOutput_NamesGradOutput()
    {
        using var scope = NewDisposeScope();
        Tensor x = Float64(new[] { 1.0, 2.0, -0.5 });
        Tensor g = Float64(new[] { 0.5, -1.0, 2.0 });

        GradCheckResult result = GradGradCheck.Check(CubeWrongDoubleBackwardG, x, g, GradCheckTestFunctions.NoRaise);

        // d(3 x^2 g)/dg = 3 x^2 = [3, 12, 0.75]; the planted derivative is 2 x^2.
        Assert.That(result.Mismatches, Has.Count.EqualTo(1));
        Assert.That(result.InputIndex, Is.EqualTo(1));
        Assert.That(result.InputName, Is.EqualTo("grad_outputs[0]"));
        GradCheckMismatch mismatch = result.FirstMismatch!;
        Assert.That(mismatch.InputElementIndex, Is.EqualTo(new long[] { 1 }));
        Assert.That(mismatch.Numerical, Is.EqualTo(12.0).Within(1e-6));
        Assert.That(mismatch.Analytical, Is.EqualTo(8.0).Within(1e-12));
        Assert.That(result.ToString(), Does.Contain("with respect to grad_outputs[0]"));
    }

    [Test]
    public void GradGradCheck_OnceDifferentiable_FailsNamingFunction()
    {
        using var scope = NewDisposeScope();
        GradCheckResult result = GradGradCheck.Check(CubeOnceDifferentiable, Float64(new long[] { 3 }), options: GradCheckTestFunctions.NoRaise);

        Assert.That(result.FailureKind, Is.EqualTo(GradCheckFailureKind.BackwardFailed));
        Assert.That(result.ToString(), Does.Contain("once-differentiable").And.Contain("GcCubeOnce"));
    }

    [Test]
    public void GradGradCheck_GradOutputCountMismatch_Throws()
    {
        using var scope = NewDisposeScope();
        Tensor x = Float64(new long[] { 2 });
        Assert.Throws<System.ArgumentException>(() =>
            GradGradCheck.Check(xs => new[] { xs[0]! * 2 }, new[] { x }, new[] { Float64(new long[] { 2 }), Float64(new long[] { 2 }) }));
    }
}
