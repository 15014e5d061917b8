// SPDX-License-Identifier: MIT
using System;
using System.Collections.Generic;
using System.Linq;
using NUnit.Framework;
using static CustomAutograd.Tests.GradCheckTestFunctions;
using static TorchSharp.torch;

namespace CustomAutograd.Tests;

/// <summary>
/// GradCheck and GradGradCheck take every function form directly: the three-tensor form with and without its
/// optional third input, the array form with null inputs, the typed-args forms with their arguments, and
/// delegates; null inputs are passed through and not differentiated. Every call here is written as a user
/// would (implicit lambdas, bare nulls), so an ambiguous overload set would not compile.
/// </summary>
[TestFixture]
public sealed class GradCheckFunctionFormsTests
{
    private static readonly GradCheckOptions Jacobians = new() { ReturnJacobians = true };

    /// <summary>Asserts that the check passed, counted <paramref name="inputCount"/> inputs and built Jacobians
    /// (<see cref="GradCheckOptions.ReturnJacobians"/>) for exactly <paramref name="checkedInputs"/>.</summary>
    private static void AssertPassedChecking(GradCheckResult result, int inputCount, params int[] checkedInputs)
    {
        Assert.That(result.Passed, Is.True, result.ToString);
        Assert.That(result.InputCount, Is.EqualTo(inputCount));
        Assert.That(result.DifferentiableInputCount, Is.EqualTo(checkedInputs.Length));
        Assert.That(result.Jacobians.Select(j => j.InputIndex).Distinct(), Is.EqualTo(checkedInputs));
    }

    /// <summary>The diagonal of a pair's analytical Jacobian (an element-wise function's derivatives).</summary>
    private static double[] AnalyticalDiagonal(GradCheckJacobian jacobian) =>
        Enumerable.Range(0, jacobian.Rows).Select(r => jacobian.Analytical(r, r)).ToArray();

    // ---------------------------------------------------------------- GradCheck

    [Test]
    public void Check_TernaryFunctionWithThirdInput_ChecksAllThree()
    {
        using var scope = NewDisposeScope();
        GradCheckResult result = GradCheck.Check(MulAdd, Float64(new long[] { 2, 3 }), Float64(new long[] { 2, 3 }), Float64(new long[] { 2, 3 }), Jacobians);

        AssertPassedChecking(result, 3, 0, 1, 2);
    }

    [Test]
    public void Check_TernaryFunctionWithNullThirdInput_ChecksTheOtherTwo()
    {
        using var scope = NewDisposeScope();
        Tensor a = Float64(new[] { 1.0, -2.0 }), b = Float64(new[] { 3.0, 0.5 });

        GradCheckResult result = GradCheck.Check(MulAdd, a, b, null, Jacobians);

        AssertPassedChecking(result, 3, 0, 1);
        Assert.That(AnalyticalDiagonal(result.Jacobians[0]), Is.EqualTo(new[] { 3.0, 0.5 }), "d(a*b)/da = b");
    }

    [Test]
    public void Check_TernaryFunctionWrongThirdGradient_FailsOnlyWhenTheThirdIsGiven()
    {
        using var scope = NewDisposeScope();
        Tensor a = Float64(new long[] { 3 }), b = Float64(new long[] { 3 }), c = Float64(new long[] { 3 });

        GradCheckResult withBias = GradCheck.Check(MulAddWrongBiasGrad, a, b, c, NoRaise);
        GradCheckResult withoutBias = GradCheck.Check(MulAddWrongBiasGrad, a, b, null, NoRaise);

        Assert.That(withBias.FailureKind, Is.EqualTo(GradCheckFailureKind.JacobianMismatch));
        Assert.That(withBias.InputIndex, Is.EqualTo(2));
        GradCheckMismatch mismatch = withBias.FirstMismatch!;
        Assert.That(mismatch.Numerical, Is.EqualTo(1.0).Within(1e-8));
        Assert.That(mismatch.Analytical, Is.EqualTo(2.0));
        Assert.That(withoutBias.Passed, Is.True, withoutBias.ToString);
    }

    [Test]
    public void Check_MultiFunctionWithNullInput_SkipsIt()
    {
        using var scope = NewDisposeScope();
        Tensor a = Float64(new[] { 2.0, -1.0 }), c = Float64(new[] { 0.5, 4.0 });

        GradCheckResult result = GradCheck.Check(ProductOfPresent, new[] { a, null, c }, Jacobians);

        AssertPassedChecking(result, 3, 0, 2);
        Assert.That(AnalyticalDiagonal(result.Jacobians[0]), Is.EqualTo(new[] { 0.5, 4.0 }), "d(a*c)/da = c");
    }

    [Test]
    public void Check_DelegateOfArrayWithNullInput_ReceivesNullAndSkipsIt()
    {
        using var scope = NewDisposeScope();
        var sawNull = new List<bool>();

        GradCheckResult result = GradCheck.Check(xs =>
        {
            sawNull.Add(xs[1] is null);
            return new[] { xs[0]!.sin() * xs[2]! };
        }, new[] { Float64(new long[] { 3 }), null, Float64(new long[] { 3 }) });

        Assert.That(result.Passed, Is.True, result.ToString);
        Assert.That(result.DifferentiableInputCount, Is.EqualTo(2));
        Assert.That(sawNull, Is.Not.Empty.And.All.True);
    }

    [Test]
    public void Check_UnaryFunctionWithArgs_PassesTheArgs()
    {
        using var scope = NewDisposeScope();
        GradCheckResult result = GradCheck.Check(ScaleBy, Float64(new long[] { 3 }), -2.5, Jacobians);

        AssertPassedChecking(result, 1, 0);
        Assert.That(AnalyticalDiagonal(result.Jacobians[0]), Is.EqualTo(new[] { -2.5, -2.5, -2.5 }));
        Assert.That(result.Jacobians[0].Numerical(1, 1), Is.EqualTo(-2.5).Within(1e-8));
    }

    [Test]
    public void Check_BinaryFunctionWithArgs_PassesTheArgs()
    {
        using var scope = NewDisposeScope();
        Tensor a = Float64(new[] { 1.0, 2.0 }), b = Float64(new[] { -1.5, 0.25 });

        GradCheckResult result = GradCheck.Check(ScaledProduct, a, b, 3.0, Jacobians);

        AssertPassedChecking(result, 2, 0, 1);
        Assert.That(AnalyticalDiagonal(result.Jacobians[0]), Is.EqualTo(new[] { -4.5, 0.75 }), "d(k a b)/da = k b");
        Assert.That(AnalyticalDiagonal(result.Jacobians[1]), Is.EqualTo(new[] { 3.0, 6.0 }), "d(k a b)/db = k a");
    }

    [Test]
    public void Check_TernaryFunctionWithArgs_WithAndWithoutThirdInput()
    {
        using var scope = NewDisposeScope();
        Tensor a = Float64(new[] { 1.0, 2.0 }), b = Float64(new[] { -1.5, 0.25 }), c = Float64(new long[] { 2 });

        GradCheckResult withBias = GradCheck.Check(ScaledMulAdd, a, b, c, 2.0, Jacobians);
        GradCheckResult withoutBias = GradCheck.Check(ScaledMulAdd, a, b, null, 2.0, Jacobians);

        AssertPassedChecking(withBias, 3, 0, 1, 2);
        AssertPassedChecking(withoutBias, 3, 0, 1);
        Assert.That(AnalyticalDiagonal(withoutBias.Jacobians[0]), Is.EqualTo(new[] { -3.0, 0.5 }), "d(k a b)/da = k b");
    }

    [Test]
    public void Check_MultiFunctionWithArgsAndNullInput_PassesTheArgsAndSkipsTheNull()
    {
        using var scope = NewDisposeScope();
        Tensor a = Float64(new[] { 2.0, -1.0 }), c = Float64(new[] { 0.5, 4.0 });

        GradCheckResult result = GradCheck.Check(ScaledProductOfPresent, new[] { null, a, c }, 0.5, Jacobians);

        AssertPassedChecking(result, 3, 1, 2);
        Assert.That(AnalyticalDiagonal(result.Jacobians[0]), Is.EqualTo(new[] { 0.25, 2.0 }), "d(k a c)/da = k c");
    }

    [Test]
    public void Check_ImplicitLambdasAndBareNulls_ResolveToTheIntendedOverloads()
    {
        using var scope = NewDisposeScope();
        Tensor x = Float64(new long[] { 3 }), y = Float64(new long[] { 3 });

        GradCheckResult[] results =
        {
            GradCheck.Check(t => t.sin(), x, null),
            GradCheck.Check((p, q) => p * q.exp(), x, y, null),
            GradCheck.Check(xs => new[] { xs[0]!.tanh() }, new[] { x }, null),
            GradCheck.Check(MulAdd, x, y, null, null),
            GradCheck.Check(ProductOfPresent, new[] { x, null }, null),
            GradCheck.Check(ScaleBy, x, 2.0, null),
            GradCheck.Check(ScaledMulAdd, x, y, null, 2.0, null),
        };

        Assert.That(results.Select(r => r.Passed), Is.All.True);
        Assert.That(results.Select(r => r.InputCount), Is.EqualTo(new[] { 1, 2, 1, 3, 2, 1, 3 }));
    }

    [Test]
    public void Check_NullWhereTheDelegateTakesATensor_ThrowsArgumentNull()
    {
        using var scope = NewDisposeScope();
        ArgumentNullException e = Assert.Throws<ArgumentNullException>(() => GradCheck.Check((p, q) => p * q, Float64(new long[] { 2 }), null!))!;
        Assert.That(e.Message, Does.Contain("input 1 is null"));
    }

    [Test]
    public void Check_NullWhereTheFormTakesATensor_ThrowsArgumentNullNamingTheFunction()
    {
        using var scope = NewDisposeScope();
        ArgumentNullException e = Assert.Throws<ArgumentNullException>(() => GradCheck.Check(ScaledProduct, Float64(new long[] { 2 }), null!, 1.0))!;
        Assert.That(e.Message, Does.Contain("'GcScaledProduct': input 1 is null"));
    }

    [Test]
    public void Check_EveryInputNull_ThrowsArgumentException()
    {
        using var scope = NewDisposeScope();
        ArgumentException e = Assert.Throws<ArgumentException>(() => GradCheck.Check(ProductOfPresent, new Tensor?[] { null, null }))!;
        Assert.That(e.Message, Does.Contain("none of the 2 does"));
    }

    [Test]
    public void Check_NullFunction_ThrowsArgumentNull()
    {
        using var scope = NewDisposeScope();
        Tensor x = Float64(new long[] { 2 });
        Assert.That(() => GradCheck.Check((TernaryFunction)null!, x, x, null),
                    Throws.ArgumentNullException.With.Property(nameof(ArgumentException.ParamName)).EqualTo("function"));
        Assert.That(() => GradGradCheck.Check((UnaryFunction<double>)null!, x, 1.0),
                    Throws.ArgumentNullException.With.Property(nameof(ArgumentException.ParamName)).EqualTo("function"));
    }

    // ---------------------------------------------------------------- GradGradCheck

    [Test]
    public void GradGradCheck_TernaryFunctionWithAndWithoutThirdInput_Pass()
    {
        using var scope = NewDisposeScope();
        Tensor a = Float64(new long[] { 2, 2 }), b = Float64(new long[] { 2, 2 }), c = Float64(new long[] { 2, 2 });

        GradCheckResult withBias = GradGradCheck.Check(MulAdd, a, b, c);
        GradCheckResult withoutBias = GradGradCheck.Check(MulAdd, a, b, null, Float64(new long[] { 2, 2 }));

        Assert.That(withBias.Passed, Is.True, withBias.ToString);
        Assert.That((withBias.InputCount, withBias.DifferentiableInputCount), Is.EqualTo((4, 4)), "three inputs and a generated output gradient");
        Assert.That(withoutBias.Passed, Is.True, withoutBias.ToString);
        Assert.That((withoutBias.InputCount, withoutBias.DifferentiableInputCount), Is.EqualTo((4, 3)), "the null bias is not differentiated");
        Assert.That(withoutBias.OutputCount, Is.EqualTo(2), "grad of input 0 and grad of input 1");
    }

    [Test]
    public void GradGradCheck_MultiFunctionWithNullInput_SkipsIt()
    {
        using var scope = NewDisposeScope();
        Tensor a = Float64(new long[] { 3 }), c = Float64(new long[] { 3 });

        GradCheckResult result = GradGradCheck.Check(ProductOfPresent, new[] { a, null, c }, new[] { Float64(new long[] { 3 }) });

        Assert.That(result.Passed, Is.True, result.ToString);
        Assert.That((result.InputCount, result.DifferentiableInputCount), Is.EqualTo((4, 3)));
        Assert.That(result.OutputCount, Is.EqualTo(2), "grad of input 0 and grad of input 2");
    }

    [Test]
    public void GradGradCheck_UnaryFunctionWithArgs_PassesTheArgs()
    {
        using var scope = NewDisposeScope();
        Tensor x = Float64(new long[] { 3 }), g = Float64(new[] { 1.0, -2.0, 0.5 });

        GradCheckResult result = GradGradCheck.Check(ScaleBy, x, -2.5, g, Jacobians);

        // grad of x = k g, so its Jacobian with respect to g (input 1) is k on the diagonal.
        Assert.That(result.Passed, Is.True, result.ToString);
        GradCheckJacobian byGradOutput = result.Jacobians.Single(j => j.InputName == "grad_outputs[0]");
        Assert.That(AnalyticalDiagonal(byGradOutput), Is.EqualTo(new[] { -2.5, -2.5, -2.5 }));
    }

    [Test]
    public void GradGradCheck_BinaryFunctionWithArgs_PassesTheArgs()
    {
        using var scope = NewDisposeScope();
        Tensor a = Float64(new long[] { 2 }), b = Float64(new long[] { 2 }), g = Float64(new[] { 1.0, -2.0 });

        GradCheckResult result = GradGradCheck.Check(ScaledProduct, a, b, 3.0, g, Jacobians);

        // grad of a = k g b, so its Jacobian with respect to b is k g on the diagonal.
        Assert.That(result.Passed, Is.True, result.ToString);
        GradCheckJacobian gradAByB = result.Jacobians.Single(j => j.OutputName == "grad of input 0" && j.InputName == "input 1");
        Assert.That(AnalyticalDiagonal(gradAByB), Is.EqualTo(new[] { 3.0, -6.0 }));
    }

    [Test]
    public void GradGradCheck_TernaryAndMultiFunctionsWithArgs_PassWithNullInputs()
    {
        using var scope = NewDisposeScope();
        Tensor a = Float64(new long[] { 2 }), b = Float64(new long[] { 2 });
        Tensor g = Float64(new[] { 1.0, -2.0 });

        GradCheckResult ternary = GradGradCheck.Check(ScaledMulAdd, a, b, null, 2.0, g, Jacobians);
        GradCheckResult multi = GradGradCheck.Check(ScaledProductOfPresent, new[] { a, null, b }, 0.5, new[] { g }, Jacobians);

        Assert.That(ternary.Passed, Is.True, ternary.ToString);
        Assert.That(ternary.DifferentiableInputCount, Is.EqualTo(3), "a, b and the output gradient");
        GradCheckJacobian gradAByB = ternary.Jacobians.Single(j => j.OutputName == "grad of input 0" && j.InputName == "input 1");
        Assert.That(AnalyticalDiagonal(gradAByB), Is.EqualTo(new[] { 2.0, -4.0 }), "grad of a = k g b");
        Assert.That(multi.Passed, Is.True, multi.ToString);
        Assert.That(multi.InputCount, Is.EqualTo(4));
        GradCheckJacobian gradAByC = multi.Jacobians.Single(j => j.OutputName == "grad of input 0" && j.InputName == "input 2");
        Assert.That(AnalyticalDiagonal(gradAByC), Is.EqualTo(new[] { 0.5, -1.0 }), "grad of a = k g c");
    }

    [Test]
    public void GradGradCheck_ImplicitLambdasAndBareNulls_ResolveToTheIntendedOverloads()
    {
        using var scope = NewDisposeScope();
        Tensor x = Float64(new long[] { 2 }), y = Float64(new long[] { 2 });

        GradCheckResult[] results =
        {
            GradGradCheck.Check(t => t.sin(), x, null, null),
            GradGradCheck.Check((p, q) => p * q.exp(), x, y, null),
            GradGradCheck.Check(xs => new[] { xs[0]!.tanh() }, new[] { x }, null, null),
            GradGradCheck.Check(Cube, x, null),
            GradGradCheck.Check(MulAdd, x, y, null, null, null),
            GradGradCheck.Check(ProductOfPresent, new[] { x, null }, null),
            GradGradCheck.Check(ScaleBy, x, 2.0, null, null),
            GradGradCheck.Check(ScaledProductOfPresent, new[] { x, y }, 2.0, null),
        };

        Assert.That(results.Select(r => r.Passed), Is.All.True);
        Assert.That(results.Select(r => r.InputCount), Is.EqualTo(new[] { 2, 3, 2, 2, 4, 3, 2, 3 }));
    }
}
